"""The protocol exploration: every setting tried on the tune split (`fct explore`)."""

from __future__ import annotations

import json

import pandas as pd

from fctlib.report.common import HEADLINE_METRICS
from fctlib.suite.records import ExplorationRecord


def exploration_table(records: list[ExplorationRecord]) -> pd.DataFrame:
    """Every explored setting (tune split): label, overrides, top-1 and mAP of each case (%)."""
    rows = []
    for record in records:
        row = {"setting": record.label, "overrides": json.dumps(record.overrides)}
        for case, by_split in record.cases.items():
            row.update({f"{case} {m}": round(100 * by_split["all"][m], 1)
                        for m in HEADLINE_METRICS})
        rows.append(row)
    return pd.DataFrame(rows)
