"""The methods table (notebook 09): every method's cases under each distance beside its new model
on its own, each method's compatibility criterion, and the price its new model paid."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import pandas as pd

from fctlib.experiment.record_rows import Criterion, MethodRow
from fctlib.report.common import HEADLINE_METRICS, METRICS, Records, judged, over_seeds

METHODS_COLUMNS = ("method", "case", "distance", "top1", "top5", "mAP", "new_top1",
                   "in_protocol")  # in_protocol False: a distance the method's authors do not use
METHOD_VALUES = [*METRICS, "new_top1"]
CRITERIA_COLUMNS = ["method", "case", "reference", "distance", "in_protocol", "metric",
                    "case_value", "reference_value", "margin", "verdict", "seeds_agreeing"]


def methods_frame(rows: list[MethodRow], seed: int) -> pd.DataFrame:
    """One seed's methods rows, values in percent, in the order measured."""
    data = [{"seed": seed, "method": r.method, "case": r.case, "distance": r.distance,
             **{v: 100 * getattr(r, v) for v in METHOD_VALUES}, "in_protocol": r.in_protocol}
            for r in rows]
    return pd.DataFrame(data, columns=["seed", *METHODS_COLUMNS])


def methods_rows(records: Records) -> pd.DataFrame:
    """Every seed's methods rows (as methods_frame)."""
    return over_seeds(records, "methods", lambda r, seed: methods_frame(r.rows, seed),
                      ["seed", *METHODS_COLUMNS])


def methods_table(long: pd.DataFrame) -> pd.DataFrame:
    """The methods table: mean over seeds, in percent, one row per method, case and distance, in
    the order the rows were measured."""
    if long.empty:
        return pd.DataFrame(columns=list(METHODS_COLUMNS))
    table = long.groupby(["method", "case", "distance", "in_protocol"],
                         sort=False)[METHOD_VALUES].mean()
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


def _distinct(records: Records, attribute: str) -> list:
    return list(dict.fromkeys(item for steps in records.values() if "methods" in steps
                              for item in getattr(steps["methods"], attribute)))


def seeds_criteria(records: Records) -> list[Criterion]:
    """The compatibility criteria of every seed's methods record, each once, in order."""
    return _distinct(records, "criteria")


def seeds_unpriced(records: Records) -> list[str]:
    """The methods any seed's methods record leaves out of the price table, in order."""
    return _distinct(records, "unpriced")


def seeds_methods(records: Records) -> list[str]:
    """Every method registered when any seed's notebook 09 ran, in table order (none for records
    written before notebook 09 recorded them)."""
    return _distinct(records, "methods")


def criteria_table(long: pd.DataFrame, criteria: Iterable[Criterion]) -> pd.DataFrame:
    """Each method's compatibility criterion per distance and metric (top-1, mAP) over the seeds
    of `long` (methods_rows' frame): whether that distance is the method's protocol, the mean of
    its cross-model case and of the reference case, the mean margin (points), the verdict
    (`holds`: the case beats the reference in every seed, `fails`: in none, else `unresolved`)
    and the seeds where it beats it."""
    rows = []
    criteria = list(criteria)
    for distance, by_distance in long.groupby("distance", sort=False):
        per_seed = by_distance.pivot_table(index="seed", columns="case",
                                           values=list(HEADLINE_METRICS))
        protocol = by_distance.groupby("case")["in_protocol"].first()
        for criterion in criteria:
            cross, reference = criterion.case, criterion.reference
            if cross not in protocol.index or reference not in protocol.index:
                continue
            for metric in HEADLINE_METRICS:
                a, b = per_seed[(metric, cross)], per_seed[(metric, reference)]
                rows.append({"method": criterion.method, "case": cross, "reference": reference,
                             "distance": distance, "in_protocol": bool(protocol[cross]),
                             "metric": metric, "case_value": round(float(a.mean()), 2),
                             "reference_value": round(float(b.mean()), 2), **judged(a - b)})
    return pd.DataFrame(rows, columns=CRITERIA_COLUMNS)


def price_table(methods: pd.DataFrame, unpriced: Collection[str]) -> pd.DataFrame:
    """Per method and distance: its new model's own top-1 and the price, in points, against the
    independently trained new model (new/new); the `unpriced` methods (whose new models differ on
    purpose) are left out."""
    rows = []
    for distance, by_distance in methods.groupby("distance", sort=False):
        if "new/new" not in set(by_distance["case"]):
            continue
        independent = by_distance.set_index("case").at["new/new", "top1"]
        for method, own in by_distance.groupby("method", sort=False)["new_top1"].first().items():
            if method in unpriced:
                continue
            rows.append({"method": method, "distance": distance, "new_top1": own,
                         "price": round(independent - own, 2)})
    return pd.DataFrame(rows, columns=["method", "distance", "new_top1", "price"])


def criteria_sentence(criteria: pd.DataFrame, prices: pd.DataFrame, distance: str) -> str:
    """The criteria on top-1 under `distance` with their verdicts over seeds, and the price of
    each backward-compatible method."""
    rows = criteria[(criteria["distance"] == distance) & (criteria["metric"] == "top1")]
    if rows.empty:
        return "No compatibility criteria to read."
    beats = {"holds": "beats", "fails": "does not beat", "unresolved": "does not always beat"}
    parts = [f"{r.case} {beats[r.verdict]} {r.reference} ({r.case_value:.2f}% vs "
             f"{r.reference_value:.2f}%, {r.seeds_agreeing} seeds"
             f"{'' if r.in_protocol else ', outside its protocol'})" for r in rows.itertuples()]
    cost = prices[prices["distance"] == distance]
    paid = [f"{r.method} {r.price:+.2f}" for r in cost.itertuples() if r.price != 0]
    text = f"Under {distance}, top-1: " + "; ".join(parts) + "."
    if paid:
        text += (" Price of each new model against the independent one (points of top-1; FCT's "
                 f"is 0 by construction): {', '.join(paid)}.")
    return text


def methods_not_run(table: pd.DataFrame, registered: list[str], reasons: dict[str, str]) -> str:
    """One line naming the `registered` methods the table has no rows of, with the stated reason
    of each (results/<preset>/not_run.json) where there is one; empty when every method ran."""
    missing = [m for m in registered if m not in set(table["method"])]
    if not missing:
        return ""
    why = sorted({reasons[m] for m in missing if m in reasons})
    return (f"Not measured for this preset: {', '.join(missing)}"
            f"{' (' + '; '.join(why) + ')' if why else ''}.")


def oca_diagnostics_table(records: Records) -> pd.DataFrame:
    """OCA's prototype diagnostics (`methods.oca.prototype_diagnostics`) in percent: mean and
    std over the seeds whose methods record has them, beside the top-1 of OCA's old model on its
    own (`oca-old/oca-old`, cosine: its protocol) and of OCA's slice against it; empty where no
    seed has them."""
    rows = []
    for seed, steps in records.items():
        record = steps.get("methods")
        if record is None or not record.oca_diagnostics:
            continue
        reference = {r.case: r.top1 for r in record.rows
                     if r.method == "oca" and r.distance == "cosine"}
        values = {**record.oca_diagnostics,
                  **{f"{case} top1 (cosine)": reference[case]
                     for case in ("oca-old/oca-old", "oca/oca-old") if case in reference}}
        rows += [{"seed": seed, "diagnostic": k, "value": 100 * v} for k, v in values.items()]
    if not rows:
        return pd.DataFrame(columns=["diagnostic", "mean", "std", "seeds"])
    long = pd.DataFrame(rows)
    table = long.groupby("diagnostic", sort=False)["value"].agg(mean="mean", std="std",
                                                                 seeds="count")
    return table.reset_index().round(2)
