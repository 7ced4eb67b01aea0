"""Report tables of compatibility: the multi-step matrices with their AC and AM (notebook 10), and
each method's compatibility criterion and the price its new model paid (the methods table)."""

from __future__ import annotations

import pandas as pd

from fctlib.suite.multistep import MULTISTEP_METHODS

MATRIX_METRICS = ("top1", "mAP")
# (method, cross-model case, the retrieval it must beat): the compatibility criterion of each
# method in the methods table. d-Simplex is held to its own old model and to the suite's.
CRITERIA = (
    ("independent", "new/old", "old/old"),
    ("bct", "bct/old", "old/old"),
    ("oca", "oca/old", "old/old"),
    ("dsimplex", "dsimplex/old", "dsimplex-old/dsimplex-old"),
    ("dsimplex", "dsimplex/old", "old/old"),
)


def _saved(steps: dict) -> list[tuple[str, str, dict]]:
    """A seed's saved (distance, method, results) in MULTISTEP_METHODS order (JSON sorts keys)."""
    order = {m: k for k, m in enumerate(MULTISTEP_METHODS)}
    return [(distance, method, saved)
            for distance, by_method in steps.get("multistep", {}).get("distances", {}).items()
            for method, saved in sorted(by_method.items(),
                                        key=lambda item: order.get(item[0], len(order)))]


def matrix_rows(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """Every seed's matrix entries (saved by notebook 10 as `multistep`), long, in percent:
    seed, distance, method, metric, query (generation, from 1), gallery, value."""
    rows = []
    for seed, steps in metrics.items():
        for distance, method, saved in _saved(steps):
            for metric in MATRIX_METRICS:
                for i, row in enumerate(saved[metric]):
                    rows.extend({"seed": seed, "distance": distance, "method": method,
                                 "metric": metric, "query": i + 1, "gallery": j + 1,
                                 "value": 100 * v}
                                for j, v in enumerate(row) if v is not None)
    return pd.DataFrame(rows, columns=["seed", "distance", "method", "metric", "query",
                                       "gallery", "value"])


def matrix_table(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each entry, in the order measured."""
    keys = ["distance", "method", "metric", "query", "gallery"]
    table = long.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"])
    return table.rename(columns={"count": "seeds"}).reset_index().round(2)


def scores_table(metrics: dict[int, dict[str, dict]]) -> pd.DataFrame:
    """Per distance and method, the mean over seeds of AC (share of pairs i > j where generation
    i's queries against generation j's gallery beat generation j's own retrieval) and AM (mean of
    the lower triangle, percent), on top-1 (`AC`, `AM`) and on mAP (`AC_mAP`, `AM_mAP`)."""
    rows = [{"distance": distance, "method": method, "AC": saved["AC_top1"],
             "AM": 100 * saved["AM_top1"], "AC_mAP": saved["AC_mAP"],
             "AM_mAP": 100 * saved["AM_mAP"]}
            for steps in metrics.values() for distance, method, saved in _saved(steps)]
    columns = ["distance", "method", "AC", "AM", "AC_mAP", "AM_mAP"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).groupby(["distance", "method"], sort=False)[columns[2:]].mean()
    return table.reset_index().round({"AC": 3, "AM": 2, "AC_mAP": 3, "AM_mAP": 2})


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


def criteria_table(methods: pd.DataFrame) -> pd.DataFrame:
    """Each method's compatibility criterion per distance and metric (top-1, mAP): does its
    cross-model case beat the reference case (`holds`), and by how much (`margin`, points)."""
    rows = []
    for distance, by_distance in methods.groupby("distance", sort=False):
        values = by_distance.set_index("case")
        for method, cross, reference in CRITERIA:
            if cross not in values.index or reference not in values.index:
                continue
            for metric in MATRIX_METRICS:
                a, b = values.at[cross, metric], values.at[reference, metric]
                rows.append({"method": method, "case": cross, "reference": reference,
                             "distance": distance, "metric": metric, "case_value": a,
                             "reference_value": b, "margin": round(a - b, 2),
                             "holds": bool(a > b)})
    return pd.DataFrame(rows, columns=["method", "case", "reference", "distance", "metric",
                                       "case_value", "reference_value", "margin", "holds"])


def price_table(methods: pd.DataFrame) -> pd.DataFrame:
    """Per method and distance: its new model's own top-1 and the price, in points, against the
    independently trained new model (new/new); the cross-architecture and cross-loss rows are
    left out, their new models differ on purpose."""
    rows = []
    for distance, by_distance in methods.groupby("distance", sort=False):
        if "new/new" not in set(by_distance["case"]):
            continue
        independent = by_distance.set_index("case").at["new/new", "top1"]
        for method, own in by_distance.groupby("method", sort=False)["new_top1"].first().items():
            if method.startswith("fct-"):  # FCT to another architecture or loss: another model
                continue
            rows.append({"method": method, "distance": distance, "new_top1": own,
                         "price": round(independent - own, 2)})
    return pd.DataFrame(rows, columns=["method", "distance", "new_top1", "price"])


def criteria_sentence(criteria: pd.DataFrame, prices: pd.DataFrame, distance: str) -> str:
    """The criteria on top-1 under `distance`, and the price of each backward-compatible method."""
    rows = criteria[(criteria["distance"] == distance) & (criteria["metric"] == "top1")]
    if rows.empty:
        return "No compatibility criteria to read."
    parts = [f"{r.case} {'beats' if r.holds else 'does not beat'} {r.reference} "
             f"({r.case_value:.2f}% vs {r.reference_value:.2f}%)" for r in rows.itertuples()]
    cost = prices[prices["distance"] == distance]
    paid = [f"{r.method} {r.price:+.2f}" for r in cost.itertuples() if r.price != 0]
    text = f"Under {distance}, top-1: " + "; ".join(parts) + "."
    if paid:
        text += (" Price of each new model against the independent one (points of top-1; FCT's "
                 f"is 0 by construction): {', '.join(paid)}.")
    return text
