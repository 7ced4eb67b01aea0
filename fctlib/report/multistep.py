"""Multi-step updates (notebook 10): each method's compatibility matrices over three generations,
their AC and AM over seeds, and which methods keep every later generation compatible."""

from __future__ import annotations

import pandas as pd

from fctlib.experiment.record_rows import MatrixScores
from fctlib.experiment.records import MultistepRecord
from fctlib.report.common import HEADLINE_METRICS, Records, over_seeds

MATRIX_COLUMNS = ["seed", "distance", "method", "metric", "query", "gallery", "value"]
SCORE_COLUMNS = ["distance", "method", "AC", "AM", "AC_mAP", "AM_mAP"]
FIT_ERROR_COLUMNS = ["seed", "transformation", "train", "tune"]


def _measured(record: MultistepRecord) -> list[tuple[str, str, MatrixScores]]:
    """(distance, method, scores) per distance, methods in the order measured."""
    return [(distance, method, by_method[method])
            for distance, by_method in record.distances.items() for method in record.methods]


def matrix_frame(record: MultistepRecord, seed: int) -> pd.DataFrame:
    """One seed's matrix entries, long, in percent: seed, distance, method, metric, query
    (generation, from 1), gallery, value."""
    rows = [{"seed": seed, "distance": distance, "method": method, "metric": metric,
             "query": i + 1, "gallery": j + 1, "value": 100 * v}
            for distance, method, scores in _measured(record) for metric in HEADLINE_METRICS
            for i, row in enumerate(getattr(scores, metric))
            for j, v in enumerate(row) if v is not None]
    return pd.DataFrame(rows, columns=MATRIX_COLUMNS)


def matrix_rows(records: Records) -> pd.DataFrame:
    """Every seed's matrix entries, long (as matrix_frame)."""
    return over_seeds(records, "multistep", matrix_frame, MATRIX_COLUMNS)


def matrix_table(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each entry (no `std` with one seed), in the
    order measured."""
    keys = ["distance", "method", "metric", "query", "gallery"]
    table = long.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"])
    if table["count"].max() < 2:
        table = table.drop(columns="std")
    return table.rename(columns={"count": "seeds"}).reset_index().round(2)


def scores_frame(record: MultistepRecord, seed: int) -> pd.DataFrame:
    """One seed's AC (share of pairs i > j where generation i's queries against generation j's
    gallery beat generation j's own retrieval) and AM (mean of the lower triangle, percent), on
    top-1 (`AC`, `AM`) and on mAP (`AC_mAP`, `AM_mAP`), per distance and method."""
    rows = [{"seed": seed, "distance": distance, "method": method, "AC": scores.AC_top1,
             "AM": 100 * scores.AM_top1, "AC_mAP": scores.AC_mAP, "AM_mAP": 100 * scores.AM_mAP}
            for distance, method, scores in _measured(record)]
    return pd.DataFrame(rows, columns=["seed", *SCORE_COLUMNS])


def scores_rows(records: Records) -> pd.DataFrame:
    """Every seed's AC and AM (as scores_frame)."""
    return over_seeds(records, "multistep", scores_frame, ["seed", *SCORE_COLUMNS])


def scores_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per distance and method, the mean over seeds of AC and AM (as scores_frame)."""
    if long.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    table = long.groupby(["distance", "method"], sort=False)[SCORE_COLUMNS[2:]].mean()
    return table.reset_index().round({"AC": 3, "AM": 2, "AC_mAP": 3, "AM_mAP": 2})


def fit_error_frame(record: MultistepRecord, seed: int) -> pd.DataFrame:
    """One seed's FCT transformations between generations, each h's mean squared error on train
    (fitted) and tune (held out), generations numbered from 1 as in the matrices (none: a record
    written before they were recorded)."""
    rows = []
    for hop, errors in record.fit_error.items():
        a, b = (int(k) + 1 for k in hop.split("->"))
        rows.append({"seed": seed, "transformation": f"h({a} -> {b})", **errors})
    return pd.DataFrame(rows, columns=FIT_ERROR_COLUMNS)


def fit_error_table(records: Records) -> pd.DataFrame:
    """Per transformation, the mean over seeds of its fit errors and the seeds."""
    long = over_seeds(records, "multistep", fit_error_frame, FIT_ERROR_COLUMNS)
    grouped = long.groupby("transformation", sort=False)
    table = grouped[["train", "tune"]].mean()
    table["seeds"] = grouped["seed"].nunique()
    return table.reset_index().round(5)


def compatibility_table(scores: pd.DataFrame, distance: str) -> pd.DataFrame:
    """`method,AC,AM` under one distance (top-1; AM in percent)."""
    return scores.loc[scores["distance"] == distance, ["method", "AC", "AM"]].reset_index(
        drop=True)


def compatibility_sentence(table: pd.DataFrame, seeds: int, distance: str) -> str:
    """Which methods keep every later generation compatible (AC = 1), FCT's two ways compared."""
    if table.empty:
        return "No multi-step results to read."
    ac, am = table.set_index("method")["AC"], table.set_index("method")["AM"]
    full = [m for m, v in ac.items() if v == 1]
    partial = [f"{m} {v:.2f}" for m, v in ac.items() if v < 1]
    text = (f"Mean over {seeds} seed(s), {distance}: AC = 1 (every later generation beats the "
            f"earlier one's own retrieval) for {', '.join(full) or 'no method'}")
    if partial:
        text += f"; AC falls short for {', '.join(partial)}"
    if {"fct-chained", "fct-direct"} <= set(ac.index):
        text += (f". FCT chained through every generation: AC {ac['fct-chained']:.2f}, AM "
                 f"{am['fct-chained']:.2f}%; direct: AC {ac['fct-direct']:.2f}, AM "
                 f"{am['fct-direct']:.2f}%")
        if "fct-chained" not in full:
            text += " (the expectation that FCT keeps AC = 1 fails)"
    return text + "."
