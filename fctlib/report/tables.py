"""Result tables: per-seed step metrics aggregated into tables, claims and comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fctlib.evaluation.backfill import AUC_RULES, area_under_curve
from fctlib.io import atomic_write, load_json_if_exists
from fctlib.suite.provenance import git_commit, provenance, provenance_comment

METRICS = ("top1", "top5", "mAP")
CASE_ORDER = ("old/old", "new/new", "bct/old", "bct/bct", "fct/no-side", "fct/side")
CASE_STEPS = ("old", "new", "bct", "transformation")
METHODS_COLUMNS = ("method", "case", "distance", "top1", "top5", "mAP", "new_top1")

# Published single-run numbers of the FCT reference code (CMC top-1 / top-5 / mAP, %).
PUBLISHED = pd.DataFrame(
    [
        ("CIFAR-100", "old/old", 34.2, 60.6, 16.5),
        ("CIFAR-100", "new/new", 56.5, 77.0, 36.3),
        ("CIFAR-100", "fct/no-side", 47.2, 72.6, 25.8),
        ("CIFAR-100", "fct/side", 50.2, 73.7, 32.2),
        ("ImageNet-1k", "old/old", 46.4, 65.1, 28.3),
        ("ImageNet-1k", "new/new", 68.4, 84.7, 45.6),
        ("ImageNet-1k", "fct/no-side", 61.8, 80.5, 39.9),
        ("ImageNet-1k", "fct/side", 65.1, 82.7, 44.0),
    ],
    columns=["dataset", "case", "top1", "top5", "mAP"],
)
PUBLISHED_SOURCE = "FCT reference code (Ramanujan et al., CVPR 2022), single runs"

# (claim, lower case, higher case, strict): holds when higher - lower > 0 (>= 0 if not strict)
CLAIMS = (
    ("old/old < fct/no-side", "old/old", "fct/no-side", True),
    ("fct/no-side < fct/side", "fct/no-side", "fct/side", True),
    ("fct/side <= new/new", "fct/side", "new/new", False),
    ("bct/old > old/old", "old/old", "bct/old", True),
    ("fct/side > bct/old", "bct/old", "fct/side", True),
    ("bct/bct <= new/new", "bct/bct", "new/new", False),
)


def metrics_frame(cases: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """{case: {split: metrics}} as a table in percent, one row per case, columns split x metric."""
    rows = {case: {(split, m): round(100 * v[m], 2) for split, v in by_split.items()
                   for m in METRICS} for case, by_split in cases.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def load_metrics(results_dir: str | Path) -> dict[int, dict[str, dict]]:
    """{seed: {step: metrics}} from results/<preset>/metrics/seed<k>/<step>.json."""
    out: dict[int, dict[str, dict]] = {}
    for path in sorted(Path(results_dir, "metrics").glob("seed*/*.json")):
        seed = int(path.parent.name.removeprefix("seed"))
        out.setdefault(seed, {})[path.stem] = json.loads(path.read_text())
    if not out:
        raise FileNotFoundError(f"no step metrics under {Path(results_dir, 'metrics')}; "
                                "run the suite first (make reproduce)")
    return out


def case_rows(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """Long table: one row per seed, case and class split, metrics in percent."""
    rows = []
    for seed, steps in metrics.items():
        for step in CASE_STEPS:
            for case, by_split in steps.get(step, {}).get("cases", {}).items():
                for split, values in by_split.items():
                    rows.append({"seed": seed, "case": case, "split": split,
                                 **{m: 100 * values[m] for m in METRICS}})
    return pd.DataFrame(rows, columns=["seed", "case", "split", *METRICS])


def _mean_std(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = df.groupby(keys, sort=False)
    table = grouped[list(METRICS)].mean()
    std = grouped[list(METRICS)].std(ddof=1).fillna(0.0).add_suffix("_std")
    table = table.join(std)
    table["seeds"] = grouped["seed"].nunique()
    return table.reset_index().round(2)


def _order_cases(table: pd.DataFrame) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(CASE_ORDER)}
    return table.sort_values("case", key=lambda s: s.map(rank), kind="stable").reset_index(
        drop=True)


def main_table(long: pd.DataFrame) -> pd.DataFrame:
    """case, top1, top5, mAP, their standard deviations over seeds, and the number of seeds."""
    return _order_cases(_mean_std(long[long["split"] == "all"], ["case"]))


def main_by_split_table(long: pd.DataFrame) -> pd.DataFrame:
    """The main table for queries of old classes, of new classes and of all."""
    table = _mean_std(long, ["split", "case"])
    cols = ["case", "split", *METRICS, *(f"{m}_std" for m in METRICS), "seeds"]
    split_rank = {"old": 0, "new": 1, "all": 2}
    table = table.sort_values("split", key=lambda s: s.map(split_rank), kind="stable")
    return _order_cases(table)[cols]


def claims_table(long: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")) -> pd.DataFrame:
    """Each paper claim per metric: `holds` if every seed agrees it holds, `fails` if every seed
    agrees it fails, else `unresolved`; margin = mean (higher - lower) in points."""
    per_seed = long[long["split"] == "all"].pivot_table(index="seed", columns="case",
                                                        values=list(metrics))
    rows = []
    for claim, lower, higher, strict in CLAIMS:
        for metric in metrics:
            if (metric, lower) not in per_seed or (metric, higher) not in per_seed:
                continue
            margins = per_seed[(metric, higher)] - per_seed[(metric, lower)]
            holds = margins > 0 if strict else margins >= 0
            verdict = _verdict(holds)
            rows.append({"claim": claim, "metric": metric, "verdict": verdict,
                         "margin": round(float(margins.mean()), 2),
                         "seeds_agreeing": f"{int(holds.sum())}/{len(holds)}"})
    return pd.DataFrame(rows, columns=["claim", "metric", "verdict", "margin", "seeds_agreeing"])


def gap_closed(table: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")) -> pd.DataFrame:
    """Share of the old/old -> new/new gap that each case closes: (case - old) / (new - old)."""
    by_case = table.set_index("case")
    rows = []
    for case in by_case.index:
        if case in ("old/old", "new/new"):
            continue
        row = {"case": case}
        for m in metrics:
            gap = by_case.at["new/new", m] - by_case.at["old/old", m]
            row[f"{m}_gap_closed"] = round(
                float((by_case.at[case, m] - by_case.at["old/old", m]) / gap), 3
            ) if gap else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def paper_comparison(table: pd.DataFrame, ours_label: str) -> pd.DataFrame:
    """Our mean numbers beside the published ones (never mixed into one column), per case, with
    the share of the old-to-new gap closed: the quantity comparable across data sets."""
    ours_gap = gap_closed(table).set_index("case")
    rows = []
    for case in CASE_ORDER:
        if case not in set(table["case"]):
            continue
        ours = table.set_index("case").loc[case]
        row = {"case": case, "ours_data": ours_label}
        row.update({f"ours_{m}": ours[m] for m in METRICS})
        for m in ("top1", "mAP"):
            col = f"{m}_gap_closed"
            row[f"ours_{col}"] = ours_gap.at[case, col] if case in ours_gap.index else np.nan
        for dataset, published in PUBLISHED.groupby("dataset", sort=False):
            tag = dataset.lower().replace("-", "").replace("1k", "")
            pub = published.set_index("case")
            row.update({f"{tag}_{m}": pub.at[case, m] if case in pub.index else np.nan
                        for m in METRICS})
            pub_gap = gap_closed(published.reset_index(drop=True)).set_index("case")
            for m in ("top1", "mAP"):
                col = f"{m}_gap_closed"
                row[f"{tag}_{col}"] = pub_gap.at[case, col] if case in pub_gap.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def published_gaps() -> dict[str, pd.DataFrame]:
    """Gap closed by each method in the published runs, per data set."""
    return {f"published {name}": gap_closed(frame.reset_index(drop=True))
            for name, frame in PUBLISHED.groupby("dataset", sort=False)}


def claims_sentence(claims: pd.DataFrame) -> str:
    """One plain sentence per verdict: which claims hold, which fail, which are unresolved."""
    parts = []
    for verdict in ("holds", "fails", "unresolved"):
        chosen = claims[claims["verdict"] == verdict]
        if len(chosen):
            items = "; ".join(f"{r.claim} ({r.metric}, margin {r.margin:+.2f}, {r.seeds_agreeing})"
                              for r in chosen.itertuples())
            parts.append(f"**{verdict}**: {items}.")
    return "\n\n".join(parts) or "No claim could be evaluated (missing cases)."


def side_info_size_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """side_info_dim, top1, top5, mAP (mean over seeds, percent; 0 = no side-info) and stds."""
    rows = [
        {"seed": seed, "side_info_dim": r["side_info_dim"],
         **{m: 100 * r["metrics"]["all"][m] for m in METRICS}}
        for seed, steps in metrics.items()
        for r in steps.get("side_info_size", {}).get("rows", [])
    ]
    if not rows:
        return pd.DataFrame(columns=["side_info_dim", *METRICS])
    table = _mean_std(pd.DataFrame(rows), ["side_info_dim"])
    return table.sort_values("side_info_dim").reset_index(drop=True)


def _ablation_table(metrics: dict[int, dict[str, dict]], ablation: str, keys: list[str]
                    ) -> pd.DataFrame:
    """One ablation's rows (saved by notebook 08 as `ablations`), mean and std over seeds."""
    rows = [{"seed": seed, **{k: r[k] for k in keys},
             **{m: 100 * r["metrics"]["all"][m] for m in METRICS}}
            for seed, steps in metrics.items()
            for r in steps.get("ablations", {}).get(ablation, [])]
    if not rows:
        return pd.DataFrame(columns=[*keys, *METRICS])
    return _mean_std(pd.DataFrame(rows), keys)


def side_info_source_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """FCT by side-info source (simclr, supervised, random, none), in the preset's order."""
    return _ablation_table(metrics, "side_info_source", ["source", "side_info_dim"])


def data_share_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """FCT by the share of the training set that fits h (and its number of images), ascending."""
    table = _ablation_table(metrics, "data_share", ["data_share", "train_images"])
    return table.sort_values("data_share").reset_index(drop=True)


def width_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """FCT by the width factor of h (and its number of parameters), ascending."""
    table = _ablation_table(metrics, "width", ["width_factor", "parameters"])
    return table.sort_values("width_factor").reset_index(drop=True)


def side_info_source_sentence(table: pd.DataFrame) -> str:
    """One sentence: is self-supervised side-info the best source by top-1, with the numbers."""
    top1 = table.set_index("source")["top1"]
    if "simclr" not in top1 or len(top1) < 2:
        return "Too few side-info sources ran to compare them with self-supervised side-info."
    others = top1.drop("simclr")
    rivals = [s for s, v in others.items() if v >= top1["simclr"]]
    verdict = ("holds" if not rivals
               else f"fails ({', '.join(rivals)} reach at least as much)")
    listing = ", ".join(f"{s} {v:.2f}%" for s, v in others.items())
    return (f"FCT top-1 with self-supervised (SimCLR) side-info is {top1['simclr']:.2f}% against "
            f"{listing}: the expectation that self-supervised side-info is the best source "
            f"{verdict}.")


def trend_sentence(table: pd.DataFrame, column: str, what: str) -> str:
    """One sentence: does FCT top-1 never fall as `column` grows; every fall named with numbers."""
    points = list(zip(table[column], table["top1"], strict=True))
    path = ", ".join(f"{x:g}: {v:.2f}%" for x, v in points)
    falls = [f"{a:g} -> {b:g}: {va:.2f}% -> {vb:.2f}%"
             for (a, va), (b, vb) in zip(points[:-1], points[1:], strict=True) if vb < va]
    verdict = (f"it never falls as {what} grows, as expected" if not falls else
               f"the expectation that it does not fall as {what} grows fails ({'; '.join(falls)})")
    return f"FCT top-1 by {what} ({path}): {verdict}."


def methods_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """The methods table (saved by notebook 09 as `methods`): mean over seeds, in percent, one row
    per method, case and distance, in the order the rows were measured."""
    rows = [{"seed": seed, **r} for seed, steps in metrics.items()
            for r in steps.get("methods", {}).get("rows", [])]
    if not rows:
        return pd.DataFrame(columns=list(METHODS_COLUMNS))
    values = [*METRICS, "new_top1"]
    df = pd.DataFrame(rows)
    df[values] = 100 * df[values]
    table = df.groupby(["method", "case", "distance"], sort=False)[values].mean()
    return table.reset_index().round(2)[list(METHODS_COLUMNS)]


def methods_sentence(table: pd.DataFrame, seeds: int) -> str:
    """One sentence: which cross-model cases beat old/old top-1 (a compatible update's gain), per
    distance, with the numbers."""
    parts = []
    for distance, rows in table.groupby("distance", sort=False):
        top1 = rows.set_index("case")["top1"]
        if "old/old" not in top1:
            continue
        cross = top1[[c for c in top1.index if len(set(c.split("/"))) == 2]]  # two models
        above = [f"{c} {v:.2f}%" for c, v in cross.items() if v > top1["old/old"]]
        below = [f"{c} {v:.2f}%" for c, v in cross.items() if v <= top1["old/old"]]
        text = (f"under {distance} old/old top-1 is {top1['old/old']:.2f}% and "
                f"{', '.join(above) or 'no cross-model case'} beat it")
        if below:
            text += f", while the expected gain fails for {', '.join(below)}"
        parts.append(text)
    if not parts:
        return "No methods rows to read."
    return f"Mean over {seeds} seed(s): " + "; ".join(parts) + "."


def bct_sweep_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """The BCT weight sweep on the tune split (mean over seeds) and how often each was chosen."""
    rows = []
    for seed, steps in metrics.items():
        bct = steps.get("bct")
        if not bct:
            continue
        for r in bct["sweep"]:
            rows.append({"seed": seed, "weight": r["weight"],
                         "tune_bct_old_top1": 100 * r["bct/old"]["top1"],
                         "tune_bct_old_mAP": 100 * r["bct/old"]["mAP"],
                         "tune_bct_bct_top1": 100 * r["bct/bct"]["top1"],
                         "tune_bct_bct_mAP": 100 * r["bct/bct"]["mAP"],
                         "chosen": r["weight"] == bct["weight"]})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    table = df.drop(columns="seed").groupby("weight").agg(
        {**{c: "mean" for c in df.columns if c.startswith("tune_")}, "chosen": "sum"})
    return table.rename(columns={"chosen": "seeds_choosing"}).reset_index().round(2)


def exploration_table(results_dir: str | Path) -> pd.DataFrame:
    """Every explored setting (tune split): label, overrides, top-1 and mAP of each case."""
    rows = []
    for path in sorted(Path(results_dir, "exploration").glob("*.json")):
        record = json.loads(path.read_text())
        row = {"setting": record["label"], "overrides": json.dumps(record["overrides"])}
        for case, by_split in record["cases"].items():
            row.update({f"{case} {m}": round(100 * by_split["all"][m], 1) for m in ("top1", "mAP")})
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, folder: str | Path, name: str, info: dict) -> Path:
    """Write `name.csv` and `name.md` (both headed by provenance comment lines), atomically."""
    folder = Path(folder)
    comment = provenance_comment(info)
    atomic_write(folder / f"{name}.csv",
                 lambda tmp: tmp.write_text(comment + table.to_csv(index=False)))
    markdown = table.to_markdown(index=False) if len(table) else "(empty)"
    md_comment = "".join(f"<!-- {line[2:]} -->\n" for line in comment.splitlines())
    atomic_write(folder / f"{name}.md", lambda tmp: tmp.write_text(md_comment + markdown + "\n"))
    return folder / f"{name}.csv"


def run_provenance(results_dir: str | Path, preset: str, seeds: list[int]) -> dict:
    """The provenance of the run that made the metrics (results/<preset>/last_run.json, written
    by the runner), plus the commit that rendered this report."""
    info = load_json_if_exists(Path(results_dir) / "last_run.json") or provenance(preset, seeds)
    return {**info, "seeds": seeds, "report_commit": git_commit()}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by `write_table` (skipping its provenance lines)."""
    return pd.read_csv(path, comment="#")


# -- partial backfilling (FastFill) ---------------------------------------------------------------
# Published area under the backfilling curve (mean of 22 points, %), FastFill paper's tables.
PUBLISHED_BACKFILLING = pd.DataFrame(
    [
        ("CIFAR-100", "none", "fct", "random", 49.1, 73.6, 29.1),
        ("CIFAR-100", "none", "fastfill", "uncertainty", 53.6, 75.3, 32.5),
        ("ImageNet-1k", "none", "fct", "random", 62.8, 81.1, 40.5),
        ("ImageNet-1k", "none", "fastfill", "uncertainty", 66.5, 83.6, 44.8),
        ("ImageNet-1k", "128-d", "fct", "random", 64.7, 82.4, 42.6),
        ("ImageNet-1k", "128-d", "fastfill", "uncertainty", 67.8, 84.2, 46.2),
    ],
    columns=["dataset", "side_info", "transformation", "order", "auc_top1", "auc_top5", "auc_mAP"],
)
PUBLISHED_BACKFILLING_SOURCE = ("FastFill (Jaeckle et al., ICLR 2023) with the FCT reference code; "
                                "area = mean of 22 points, single runs")
CURVE_KEYS = ["side_info_dim", "transformation", "order"]
AUC_COLUMNS = [f"auc_{m}" for m in METRICS]
# (claim, lower curve, higher curve, strict), on the area by the published (mean) rule
BACKFILL_CLAIMS = (
    ("fastfill uncertainty > fastfill random", ("fastfill", "random"),
     ("fastfill", "uncertainty"), True),
    ("fastfill uncertainty > fct random", ("fct", "random"), ("fastfill", "uncertainty"), True),
    ("fastfill oracle >= fastfill uncertainty", ("fastfill", "uncertainty"),
     ("fastfill", "oracle"), False),
    ("fastfill oracle >= fastfill random", ("fastfill", "random"), ("fastfill", "oracle"), False),
    ("fastfill oracle >= fct random", ("fct", "random"), ("fastfill", "oracle"), False),
)


def _verdict(holds: pd.Series) -> str:
    """`holds` if every seed agrees, `fails` if no seed does, else `unresolved`."""
    return "holds" if holds.all() else "fails" if not holds.any() else "unresolved"


def backfilling_rows(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """Long table of the backfilling curves (step `fastfill`): one row per seed, side-info size,
    curve and fraction, metrics of all queries in percent."""
    rows = [
        {"seed": seed, "side_info_dim": curve["side_info_dim"],
         "transformation": curve["transformation"], "order": curve["order"],
         "fraction": point["fraction"], "backfilled": point["backfilled"],
         **{m: 100 * point["metrics"]["all"][m] for m in METRICS}}
        for seed, steps in metrics.items()
        for curve in steps.get("fastfill", {}).get("curves", [])
        for point in curve["points"]
    ]
    return pd.DataFrame(rows, columns=["seed", *CURVE_KEYS, "fraction", "backfilled", *METRICS])


def backfilling_points_table(long: pd.DataFrame) -> pd.DataFrame:
    """Every curve point, mean and standard deviation over seeds (%), and the number of seeds."""
    table = _mean_std(long.drop(columns="backfilled"), [*CURVE_KEYS, "fraction"])
    table["fraction"] = table["fraction"].round(4)
    return table


def _areas(long: pd.DataFrame) -> pd.DataFrame:
    """Area under each curve per seed, by each rule (%)."""
    rows = []
    for key, curve in long.groupby(["seed", *CURVE_KEYS], sort=False):
        curve = curve.sort_values("fraction")
        for rule in AUC_RULES:
            rows.append({**dict(zip(["seed", *CURVE_KEYS], key, strict=True)), "auc_rule": rule,
                         **{f"auc_{m}": area_under_curve(curve["fraction"], curve[m], rule)
                            for m in METRICS}})
    return pd.DataFrame(rows, columns=["seed", *CURVE_KEYS, "auc_rule", *AUC_COLUMNS])


def backfilling_table(long: pd.DataFrame, side_info_dim: int) -> pd.DataFrame:
    """transformation, order, auc_rule, auc_top1, auc_top5, auc_mAP (%, mean over seeds) and
    seeds, for the curves with side-info of size `side_info_dim` (0: none)."""
    areas = _areas(long[long["side_info_dim"] == side_info_dim])
    keys = ["transformation", "order", "auc_rule"]
    grouped = areas.groupby(keys, sort=False)
    table = grouped[AUC_COLUMNS].mean().round(2)
    table["seeds"] = grouped["seed"].nunique()
    return table.reset_index()[[*keys, *AUC_COLUMNS, "seeds"]]


def backfilling_claims(long: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")
                       ) -> pd.DataFrame:
    """FastFill's claims per side-info size and metric, on the area by the published rule:
    verdict over seeds (as claims_table), mean margin in points, seeds agreeing."""
    areas = _areas(long)
    areas = areas[areas["auc_rule"] == "mean"]
    rows = []
    for dim, by_dim in areas.groupby("side_info_dim", sort=False):
        per_seed = by_dim.pivot_table(index="seed", columns=["transformation", "order"],
                                      values=[f"auc_{m}" for m in metrics])
        for claim, lower, higher, strict in BACKFILL_CLAIMS:
            for metric in metrics:
                col = f"auc_{metric}"
                if (col, *lower) not in per_seed or (col, *higher) not in per_seed:
                    continue
                margins = per_seed[(col, *higher)] - per_seed[(col, *lower)]
                holds = margins > 0 if strict else margins >= 0
                rows.append({"side_info_dim": dim, "claim": claim, "metric": metric,
                             "verdict": _verdict(holds), "margin": round(float(margins.mean()), 2),
                             "seeds_agreeing": f"{int(holds.sum())}/{len(holds)}"})
    return pd.DataFrame(rows, columns=["side_info_dim", "claim", "metric", "verdict", "margin",
                                       "seeds_agreeing"])


def backfilling_sentence(claims: pd.DataFrame) -> str:
    """One sentence per side-info size: does FastFill's uncertainty order beat both random orders
    in area (top-1 and mAP) with the oracle above them all, and if not, which part fails."""
    sentences = []
    for dim, rows in claims.groupby("side_info_dim", sort=False):
        where = f"With side-info of size {dim}" if dim else "Without side-info"
        claim = ("FastFill's uncertainty order beats its random order and FCT's random order in "
                 "area under the backfilling curve (top-1 and mAP) and the oracle order bounds "
                 "them")
        broken = rows[rows["verdict"] != "holds"]
        if broken.empty:
            sentences.append(f"{where}, {claim}: **holds** on every seed.")
            continue
        items = "; ".join(f"{r.claim} ({r.metric}) {r.verdict}, margin {r.margin:+.2f}, "
                          f"{r.seeds_agreeing} seeds" for r in broken.itertuples())
        sentences.append(f"{where}, the claim that {claim} **does not hold**: {items}.")
    return " ".join(sentences) or "No backfilling curves to check."


def backfilling_paper_comparison(long: pd.DataFrame, ours_label: str) -> pd.DataFrame:
    """Area (mean rule) of FCT in random order and FastFill in uncertainty order, and FastFill's
    gain, ours beside the published runs, one row per data set and side-info setting."""
    areas = _areas(long)
    ours = areas[areas["auc_rule"] == "mean"].groupby(CURVE_KEYS, sort=False)[AUC_COLUMNS].mean()
    frames = [PUBLISHED_BACKFILLING.assign(source="published")]
    for dim in ours.index.get_level_values("side_info_dim").unique():
        part = ours.loc[dim].reset_index()
        frames.append(part.assign(dataset=ours_label, side_info=f"{dim}-d" if dim else "none",
                                  source="ours"))
    both = pd.concat(frames, ignore_index=True)
    rows = []
    for (source, dataset, side), group in both.groupby(["source", "dataset", "side_info"],
                                                       sort=False):
        curves = group.set_index(["transformation", "order"])
        if ("fct", "random") not in curves.index or ("fastfill", "uncertainty") not in curves.index:
            continue
        fct, fastfill = curves.loc[("fct", "random")], curves.loc[("fastfill", "uncertainty")]
        row = {"source": source, "dataset": dataset, "side_info": side}
        row.update({f"fct_random_{c}": round(fct[c], 2) for c in AUC_COLUMNS})
        row.update({f"fastfill_uncertainty_{c}": round(fastfill[c], 2) for c in AUC_COLUMNS})
        row.update({f"gain_{c}": round(fastfill[c] - fct[c], 2) for c in AUC_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)
