"""The protocol exploration: every setting tried on the tune split (`fct explore`)."""

from __future__ import annotations

import json
import re

import pandas as pd

from fctlib.experiment.records import ExplorationRecord
from fctlib.report.common import HEADLINE_METRICS


def exploration_table(records: list[ExplorationRecord]) -> pd.DataFrame:
    """Every explored setting (tune split): label, overrides, top-1 and mAP of each case (%), the
    cases in natural order (numbers inside a name compared as numbers: w=3.0 before w=10.0)."""
    rows = []
    for record in records:
        row = {"setting": record.label, "overrides": json.dumps(record.overrides)}
        for case in sorted(record.cases, key=natural_key):
            by_split = record.cases[case]
            row.update({f"{case} {m}": round(100 * by_split["all"][m], 1)
                        for m in HEADLINE_METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def exploration_by_case(table: pd.DataFrame) -> pd.DataFrame:
    """exploration_table's output to read: a row per case (natural order), a column per setting
    and metric (empty where a setting has no such case)."""
    values = table.drop(columns="overrides").set_index("setting")
    cases = sorted({c.rsplit(" ", 1)[0] for c in values.columns}, key=natural_key)
    columns = pd.MultiIndex.from_tuples([(s, m) for s in values.index for m in HEADLINE_METRICS])
    return pd.DataFrame([[values.at[s, f"{case} {m}"] if f"{case} {m}" in values else None
                          for s, m in columns] for case in cases], index=cases, columns=columns)


def natural_key(text: str) -> tuple:
    """A sort key comparing the numbers inside `text` as numbers ("w=3.0" < "w=10.0")."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))
