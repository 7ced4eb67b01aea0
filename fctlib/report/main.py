"""The main comparison: every case of the old, new, BCT and FCT steps over seeds, by distance and
class split (each row marked in or outside its method's protocol), the paper's claims under each
distance, the share of the old-to-new gap each case closes, and the published runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fctlib.evaluation.distances import DISTANCES
from fctlib.experiment.record_rows import Cases
from fctlib.experiment.records import CaseRecord
from fctlib.report.common import (
    HEADLINE_METRICS,
    METRICS,
    Records,
    judged,
    mean_std,
    stack,
)

CASE_ORDER = ("old/old", "new/new", "bct/old", "bct/bct", "fct/no-side", "fct/side")
CASE_STEPS = ("old", "new", "bct", "transformation")  # the steps whose `cases` are compared
CASE_COLUMNS = ["seed", "case", "distance", "split", *METRICS]
# The distances each method's authors retrieve with, by the query model of its cases (the
# registry's `protocol` of bct and fct, kept here for the torch-free report; a test keeps them
# equal): openBCT and BT-2 rank normalised features, ml-fct uses L2. old and new: any.
CASE_PROTOCOLS = {"bct": ("cosine",), "fct": ("l2",)}

# Published single-run numbers (CMC top-1 / top-5 / mAP, %): the FCT reference code's, and
# BT-2's CIFAR-100 example run (README of YifeiZhou02/BT-2 at 8282360; `bt2/*` is BT-2's own
# new model, a method the suite does not train).
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
        ("CIFAR-100 BT-2", "old/old", 33.6, 55.4, 24.4),
        ("CIFAR-100 BT-2", "new/new", 62.7, 74.6, 49.9),
        ("CIFAR-100 BT-2", "bct/old", 25.0, 62.1, 24.7),
        ("CIFAR-100 BT-2", "bct/bct", 60.0, 71.9, 47.3),
        ("CIFAR-100 BT-2", "bt2/old", 38.7, 64.6, 27.7),
        ("CIFAR-100 BT-2", "bt2/bt2", 62.4, 75.1, 50.5),
    ],
    columns=["dataset", "case", "top1", "top5", "mAP"],
)
# the distance each published run retrieves with (ml-fct: `distance_metric: l2` in its eval
# configs; BT-2: `distance_metric: cosine` in configs/cifar100_eval_old_new.yaml at 8282360)
PUBLISHED_DISTANCES = {"CIFAR-100": "l2", "ImageNet-1k": "l2", "CIFAR-100 BT-2": "cosine"}
PUBLISHED_SOURCE = ("FCT reference code (Ramanujan et al., CVPR 2022), single runs, L2 "
                    "(columns cifar100_*, imagenet_*); BT-2 (Zhou et al., 2023) README at "
                    "commit 8282360, CIFAR-100 example run, cosine (columns cifar100_bt2_*)")

# the old-to-new gap has no share to close when under a point or under the seeds' spread
MIN_GAP = 1.0
GAP_TOO_SMALL = "gap too small to measure"
GAP_REVERSED = "no gap: new/new below old/old"
GAP_UNMEASURED = "no gap: old/old or new/new not run"

# (claim, lower case, higher case, strict): holds when higher - lower > 0 (>= 0 if not strict)
CLAIMS = (
    ("old/old < fct/no-side", "old/old", "fct/no-side", True),
    ("fct/no-side < fct/side", "fct/no-side", "fct/side", True),
    ("fct/side <= new/new", "fct/side", "new/new", False),
    ("bct/old > old/old", "old/old", "bct/old", True),
    ("fct/side > bct/old", "bct/old", "fct/side", True),
    ("bct/bct <= new/new", "bct/bct", "new/new", False),
)


def in_protocol(case: str, distance: str) -> bool:
    """Whether `distance` is how the authors of the case's method retrieve (CASE_PROTOCOLS)."""
    return distance in CASE_PROTOCOLS.get(case.split("/")[0], (distance,))


def case_frame(by_distance: dict[str, Cases], seed: int) -> pd.DataFrame:
    """One seed's cases under each distance, long: one row per case, distance and class split,
    metrics in percent."""
    rows = [{"seed": seed, "case": case, "distance": distance, "split": split,
             **{m: 100 * values[m] for m in METRICS}}
            for distance, cases in by_distance.items() for case, by_split in cases.items()
            for split, values in by_split.items()]
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def case_rows(records: Records, distance: str) -> pd.DataFrame:
    """Every seed's cases of the compared steps under each distance recorded, long (as
    case_frame); a record written before `by_distance` gives its cases under `distance` (the
    preset's)."""
    def by_distance(record: CaseRecord) -> dict[str, Cases]:
        return record.by_distance or {distance: record.cases}

    return stack([case_frame(by_distance(steps[step]), seed) for seed, steps in records.items()
                  for step in CASE_STEPS if step in steps], CASE_COLUMNS)


def _order_cases(table: pd.DataFrame) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(CASE_ORDER)}
    table = table.sort_values("case", key=lambda s: s.map(rank), kind="stable")
    distance_rank = {d: i for i, d in enumerate(DISTANCES)}
    return table.sort_values("distance", key=lambda s: s.map(distance_rank),
                             kind="stable").reset_index(drop=True)


def _with_protocol(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with `in_protocol` after its distance column."""
    flags = [in_protocol(c, d) for c, d in zip(table["case"], table["distance"], strict=True)]
    table = table.copy()
    table.insert(table.columns.get_loc("distance") + 1, "in_protocol", flags)
    return table


def main_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per case and distance: whether that distance is its method's protocol (`in_protocol`),
    top1, top5, mAP, their standard deviations over seeds, and the number of seeds."""
    return _with_protocol(_order_cases(mean_std(long[long["split"] == "all"],
                                                ["case", "distance"])))


def at_distance(table: pd.DataFrame, distance: str) -> pd.DataFrame:
    """The rows of main_table's output under one distance, one per case."""
    return table[table["distance"] == distance].reset_index(drop=True)


def main_by_split_table(long: pd.DataFrame) -> pd.DataFrame:
    """The main table for queries of old classes, of new classes and of all."""
    table = mean_std(long, ["split", "case", "distance"])
    cols = ["case", "distance", "in_protocol", "split", *METRICS,
            *(f"{m}_std" for m in METRICS), "seeds"]
    split_rank = {"old": 0, "new": 1, "all": 2}
    table = table.sort_values("split", key=lambda s: s.map(split_rank), kind="stable")
    table = _with_protocol(_order_cases(table))
    return table[[c for c in cols if c in table]]


def claims_table(long: pd.DataFrame, metrics: tuple[str, ...] = HEADLINE_METRICS
                 ) -> pd.DataFrame:
    """Each paper claim per metric and distance: `holds` if every seed agrees it holds, `fails`
    if every seed agrees it fails, else `unresolved`; margin = mean (higher - lower) in points."""
    rows = []
    everything = long[long["split"] == "all"]
    by_distance = {d: everything[everything["distance"] == d].pivot_table(
        index="seed", columns="case", values=list(metrics))
        for d in DISTANCES if d in set(everything["distance"])}
    for claim, lower, higher, strict in CLAIMS:
        for metric in metrics:
            for distance, per_seed in by_distance.items():
                if (metric, lower) not in per_seed or (metric, higher) not in per_seed:
                    continue
                margins = per_seed[(metric, higher)] - per_seed[(metric, lower)]
                rows.append({"claim": claim, "metric": metric, "distance": distance,
                             **judged(margins, strict)})
    return pd.DataFrame(rows, columns=["claim", "metric", "distance", "verdict", "margin",
                                       "seeds_agreeing"])


def claims_sentence(claims: pd.DataFrame) -> str:
    """One plain sentence per verdict: which claims hold, which fail, which are unresolved (each
    with its metric and distance)."""
    parts = []
    for verdict_name in ("holds", "fails", "unresolved"):
        chosen = claims[claims["verdict"] == verdict_name]
        if len(chosen):
            items = "; ".join(f"{r.claim} ({r.metric}, {r.distance}, margin {r.margin:+.2f}, "
                              f"{r.seeds_agreeing})" for r in chosen.itertuples())
            parts.append(f"**{verdict_name}**: {items}.")
    return "\n\n".join(parts) or "No claim could be evaluated (missing cases)."


def measurable_gap(by_case: pd.DataFrame, metric: str) -> float | str:
    """new/new minus old/old (points) of a table indexed by case; GAP_TOO_SMALL when the two
    differ by under MIN_GAP or under their seed spread (the sum of their standard deviations),
    GAP_REVERSED when new/new is below old/old by more than that: no share of it to close;
    GAP_UNMEASURED when either has not run (a results folder of some steps only)."""
    if not {"old/old", "new/new"} <= set(by_case.index):
        return GAP_UNMEASURED
    gap = by_case.at["new/new", metric] - by_case.at["old/old", metric]
    std = f"{metric}_std"  # absent with one seed: no spread
    stds = [by_case.at[c, std] for c in ("old/old", "new/new")] if std in by_case else []
    floor = max(MIN_GAP, float(np.nansum(stds)))
    return GAP_TOO_SMALL if abs(gap) < floor else GAP_REVERSED if gap < 0 else float(gap)


def gap_closed(table: pd.DataFrame, metrics: tuple[str, ...] = HEADLINE_METRICS
               ) -> pd.DataFrame:
    """Share of the old/old -> new/new gap that each case closes: (case - old) / (new - old), or
    why there is none (`measurable_gap`)."""
    by_case = table.set_index("case")
    rows = []
    for case in by_case.index:
        if case in ("old/old", "new/new"):
            continue
        row = {"case": case}
        for m in metrics:
            gap = measurable_gap(by_case, m)
            row[f"{m}_gap_closed"] = gap if isinstance(gap, str) else round(
                float((by_case.at[case, m] - by_case.at["old/old", m]) / gap), 3)
        rows.append(row)
    return pd.DataFrame(rows, columns=["case", *(f"{m}_gap_closed" for m in metrics)])


def paper_comparison(table: pd.DataFrame, ours_label: str) -> pd.DataFrame:
    """Our mean numbers beside the published ones (never mixed into one column), per case, with
    the share of the old-to-new gap closed: the quantity comparable across data sets."""
    ours_gap = gap_closed(table).set_index("case")
    rows = []
    published_only = [c for c in dict.fromkeys(PUBLISHED["case"]) if c not in CASE_ORDER]
    for case in (*CASE_ORDER, *published_only):
        if case not in set(table["case"]) and case not in published_only:
            continue
        ours = (table.set_index("case").loc[case] if case in set(table["case"])
                else pd.Series(np.nan, index=METRICS))
        row = {"case": case, "ours_data": ours_label}
        row.update({f"ours_{m}": ours[m] for m in METRICS})
        for m in HEADLINE_METRICS:
            col = f"{m}_gap_closed"
            row[f"ours_{col}"] = ours_gap.at[case, col] if case in ours_gap.index else np.nan
        for dataset, published in PUBLISHED.groupby("dataset", sort=False):
            tag = _published_tags()[dataset]
            row[f"{tag}_distance"] = PUBLISHED_DISTANCES[dataset]
            pub = published.set_index("case")
            row.update({f"{tag}_{m}": pub.at[case, m] if case in pub.index else np.nan
                        for m in METRICS})
            pub_gap = gap_closed(published.reset_index(drop=True)).set_index("case")
            for m in HEADLINE_METRICS:
                col = f"{m}_gap_closed"
                row[f"{tag}_{col}"] = pub_gap.at[case, col] if case in pub_gap.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def published_gaps() -> dict[str, pd.DataFrame]:
    """Gap closed by each method in the published runs, per data set."""
    return {f"published {name}": gap_closed(frame.reset_index(drop=True))
            for name, frame in PUBLISHED.groupby("dataset", sort=False)}


def gap_closed_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """paper_comparison's output as one table to read: a row per case we measured (a published
    run's own cases, e.g. BT-2's, stay in paper_comparison), and per metric our mean (%), then the
    share of the gap closed by ours and by each published run (empty where it has no such case)."""
    if comparison.empty:
        return pd.DataFrame()
    runs = {"ours": "ours"} | {tag: name for name, tag in _published_tags().items()}
    columns = {}
    for m in HEADLINE_METRICS:
        columns[(f"{m} (%)", "ours")] = comparison[f"ours_{m}"]
        for tag, name in runs.items():
            columns[(f"{m} gap closed", name)] = comparison[f"{tag}_{m}_gap_closed"]
    table = pd.DataFrame(columns)
    table.index = pd.Index(comparison["case"], name="case")
    return table[comparison[f"ours_{HEADLINE_METRICS[0]}"].notna().to_numpy()]


def _published_tags() -> dict[str, str]:
    """Each published data set and the tag of its columns in paper_comparison."""
    return {name: name.lower().replace("-", "").replace("1k", "").replace(" ", "_")
            for name in PUBLISHED["dataset"].unique()}
