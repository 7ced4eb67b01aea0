"""BCT's variants: every (variant, weight) on tune and test under L2 and cosine with its new model's
price (`tables/bct_variants.csv`), the weight sweep on tune and how often each was chosen, and the
influence-CE diagnostic of the old model's own features (`tables/bct_influence.csv`)."""

from __future__ import annotations

import pandas as pd

from fctlib.experiment.record_rows import BCTPoint, InfluenceRow, SweepPoint
from fctlib.experiment.records import BCTRecord
from fctlib.report.common import METRICS, Records, over_seeds

CASES = {"bct_old": "bct_old", "bct_bct": "bct_bct", "old_old": "old_old", "new_new": "new_new",
         "matched_matched": "matched"}  # matched: nan in records written before it
VARIANT_KEYS = ["variant", "weight", "distance", "split"]
VARIANT_VALUES = [f"{case}_{m}" for case in CASES for m in METRICS]
VARIANT_COLUMNS = ["seed", *VARIANT_KEYS, *VARIANT_VALUES, "norm_ratio", "chosen"]
SWEEP_VALUES = {"tune_bct_old_top1": ("bct_old", "top1"), "tune_bct_old_mAP": ("bct_old", "mAP"),
                "tune_bct_bct_top1": ("bct_bct", "top1"), "tune_bct_bct_mAP": ("bct_bct", "mAP")}
SWEEP_COLUMNS = ["seed", "variant", "weight", *SWEEP_VALUES, "chosen"]
INFLUENCE_VALUES = ["ce", "ce_old", "floor", "accuracy_old", "new_row_wins",
                    "old_classifier_accuracy"]
INFLUENCE_COLUMNS = ["seed", "variant", "rows", "classes", "normalize", "label_smoothing",
                     *INFLUENCE_VALUES, "flagged"]


def variant_frame(points: list[BCTPoint], chosen: tuple[str, float, str], seed: int
                  ) -> pd.DataFrame:
    """One seed's points, one row per (variant, weight, distance, split), metrics in %; `chosen`
    marks the tune row of the (variant, weight, distance) the choice was made on."""
    variant, weight, distance = chosen
    rows = [{"seed": seed, "variant": p.variant, "weight": p.weight, "distance": p.distance,
             "split": p.split,
             **{f"{case}_{m}": 100 * getattr(p, attr).get(m, float("nan"))
                for case, attr in CASES.items() for m in METRICS},
             "norm_ratio": p.norm_ratio,
             "chosen": (p.variant, p.weight, p.distance, p.split) == (variant, weight, distance,
                                                                      "tune")}
            for p in points]
    return pd.DataFrame(rows, columns=VARIANT_COLUMNS)


def variant_rows(records: Records) -> pd.DataFrame:
    """Every seed's variant points (as variant_frame; records written before variants: none)."""
    return over_seeds(records, "bct", lambda bct, seed: variant_frame(
        bct.points, (bct.variant, bct.weight, bct.distance), seed), VARIANT_COLUMNS)


def bct_variants_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, weight, distance, split), the mean over seeds of bct/old and bct/bct (top-1,
    top-5, mAP, %), the margin of bct/old over old/old (BCT's criterion), the new model's price
    against the independent new model (new/new minus bct/bct, points) and against the one trained
    with the variant's own network, loss and optimiser (`matched`: matched/matched minus
    bct/bct), the norm ratio, how many seeds chose it, and the seeds."""
    if long.empty:
        return pd.DataFrame()
    grouped = long.groupby(VARIANT_KEYS, sort=False)
    table = grouped[[*VARIANT_VALUES, "norm_ratio"]].mean()
    table["seeds_choosing"] = grouped["chosen"].sum()
    table["seeds"] = grouped.size()
    for m in METRICS:
        table[f"margin_{m}"] = table[f"bct_old_{m}"] - table[f"old_old_{m}"]
    for m in ("top1", "mAP"):
        table[f"new_new_cost_{m}"] = table[f"new_new_{m}"] - table[f"bct_bct_{m}"]
        table[f"matched_cost_{m}"] = table[f"matched_matched_{m}"] - table[f"bct_bct_{m}"]
    columns = [*(f"bct_old_{m}" for m in METRICS), *(f"bct_bct_{m}" for m in METRICS),
               *(f"margin_{m}" for m in METRICS), "new_new_cost_top1", "new_new_cost_mAP",
               "matched_cost_top1", "matched_cost_mAP", "norm_ratio", "seeds_choosing", "seeds"]
    return _without_unrecorded(table[columns].reset_index().round(2),
                               ["matched_cost_top1", "matched_cost_mAP"])


def _without_unrecorded(table: pd.DataFrame, newer: list[str]) -> pd.DataFrame:
    """`table` without the columns of `newer` that no record holds (all empty: records written
    before they existed), so that such records' tables read as they were written."""
    return table.drop(columns=[c for c in newer if table[c].isna().all()])


def sweep_frame(sweep: list[SweepPoint], chosen_weight: float, seed: int) -> pd.DataFrame:
    """One seed's weight sweep of a record written before variants: per weight, bct/old and
    bct/bct on the tune split (%), and whether it was the weight chosen."""
    rows = [{"seed": seed, "variant": "", "weight": point.weight,
             **{column: 100 * getattr(point, case)[m]
                for column, (case, m) in SWEEP_VALUES.items()},
             "chosen": point.weight == chosen_weight} for point in sweep]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def record_sweep_frame(record: BCTRecord, seed: int) -> pd.DataFrame:
    """One seed's tune sweep under the distance of its choice: per (variant, weight), bct/old and
    bct/bct (%) and whether it was chosen (records before variants: their weight sweep)."""
    if not record.points:
        return sweep_frame(record.sweep, record.weight, seed)
    rows = [{"seed": seed, "variant": p.variant, "weight": p.weight,
             **{column: 100 * getattr(p, case)[m] for column, (case, m) in SWEEP_VALUES.items()},
             "chosen": (p.variant, p.weight) == (record.variant, record.weight)}
            for p in record.points if p.split == "tune" and p.distance == record.distance]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def sweep_rows(records: Records) -> pd.DataFrame:
    """Every seed's tune sweep (as record_sweep_frame)."""
    return over_seeds(records, "bct", record_sweep_frame, SWEEP_COLUMNS)


def bct_sweep_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, weight), the mean over seeds of the tune-split metrics (%) and how many
    seeds chose it."""
    if long.empty:
        return pd.DataFrame()
    table = long.drop(columns="seed").groupby(["variant", "weight"], sort=False).agg(
        {**{c: "mean" for c in SWEEP_VALUES}, "chosen": "sum"})
    return table.rename(columns={"chosen": "seeds_choosing"}).reset_index().round(2)


def influence_frame(rows: list[InfluenceRow], seed: int) -> pd.DataFrame:
    """One seed's influence diagnostic, one row per construction (shares in %)."""
    out = [{"seed": seed, **{k: getattr(r, k) for k in INFLUENCE_COLUMNS[1:]}} for r in rows]
    frame = pd.DataFrame(out, columns=INFLUENCE_COLUMNS)
    for share in ("accuracy_old", "new_row_wins", "old_classifier_accuracy"):
        frame[share] = 100 * frame[share].astype(float)
    return frame


def influence_rows(records: Records) -> pd.DataFrame:
    """Every seed's influence diagnostic (as influence_frame)."""
    return over_seeds(records, "bct", lambda bct, seed: influence_frame(bct.influence, seed),
                      INFLUENCE_COLUMNS)


def influence_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per construction, the mean over seeds of the influence CE of the old model's own training
    features (all covered samples; old-class ones), its floor, the share of old-class samples it
    classifies, the share a new-class row wins (%, empty: no new-class rows) and the share the old
    classifier itself classifies (%), and in how many seeds it is flagged (classifies fewer than
    half as many)."""
    if long.empty:
        return pd.DataFrame()
    keys = ["variant", "rows", "classes", "normalize", "label_smoothing"]
    grouped = long.groupby(keys, sort=False)
    table = grouped[INFLUENCE_VALUES].mean()
    table["seeds_flagged"] = grouped["flagged"].sum()
    table["seeds"] = grouped.size()
    return _without_unrecorded(table.reset_index().round(3), ["old_classifier_accuracy"])
