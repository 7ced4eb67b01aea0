"""Result tables: per-seed step metrics aggregated into tables, claims and comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoint import atomic_write, load_json_if_exists
from .provenance import git_commit, provenance, provenance_comment

METRICS = ("top1", "top5", "mAP")
CASE_ORDER = ("old/old", "new/new", "bct/old", "bct/bct", "fct/no-side", "fct/side")
CASE_STEPS = ("old", "new", "bct", "transformation")

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
            verdict = "holds" if holds.all() else "fails" if not holds.any() else "unresolved"
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
