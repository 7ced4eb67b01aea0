"""The update across data sets (notebook 11): its cases by class split and distance, long and as a
table, from the records (torch-free)."""

from __future__ import annotations

import pandas as pd

from fctlib.report.common import stack
from fctlib.report.main import CASE_COLUMNS, case_frame, main_by_split_table

STEP = "cross_dataset"


def cross_dataset_rows(records: dict) -> pd.DataFrame:
    """Every seed's cross-dataset cases under each distance, long (as `case_frame`): split `old`
    are the queries of data set A's classes, `new` those of B's."""
    return stack([case_frame(steps[STEP].by_distance, seed) for seed, steps in records.items()
                  if STEP in steps], CASE_COLUMNS)


def cross_dataset_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per case, distance and class split (A's classes, B's, all): the metrics' means and
    standard deviations over seeds, with each case's protocol flag."""
    return main_by_split_table(long)
