"""The BCT influence-loss weight sweep on the tune split, and how often each weight was chosen."""

from __future__ import annotations

import pandas as pd

from fctlib.report.common import Records, over_seeds
from fctlib.suite.records import SweepPoint

SWEEP_VALUES = {"tune_bct_old_top1": ("bct_old", "top1"), "tune_bct_old_mAP": ("bct_old", "mAP"),
                "tune_bct_bct_top1": ("bct_bct", "top1"), "tune_bct_bct_mAP": ("bct_bct", "mAP")}
SWEEP_COLUMNS = ["seed", "weight", *SWEEP_VALUES, "chosen"]


def sweep_frame(sweep: list[SweepPoint], chosen_weight: float, seed: int) -> pd.DataFrame:
    """One seed's sweep: per weight, bct/old and bct/bct on the tune split (%), and whether it
    was the weight chosen."""
    rows = [{"seed": seed, "weight": point.weight,
             **{column: 100 * getattr(point, case)[m]
                for column, (case, m) in SWEEP_VALUES.items()},
             "chosen": point.weight == chosen_weight} for point in sweep]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def sweep_rows(records: Records) -> pd.DataFrame:
    """Every seed's sweep (as sweep_frame)."""
    return over_seeds(records, "bct", lambda bct, seed: sweep_frame(bct.sweep, bct.weight, seed),
                      SWEEP_COLUMNS)


def bct_sweep_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per weight, the mean over seeds of the tune-split metrics (%) and how many seeds chose it."""
    if long.empty:
        return pd.DataFrame()
    table = long.drop(columns="seed").groupby("weight").agg(
        {**{c: "mean" for c in SWEEP_VALUES}, "chosen": "sum"})
    return table.rename(columns={"chosen": "seeds_choosing"}).reset_index().round(2)
