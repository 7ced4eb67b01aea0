import json

import pandas as pd

from fctlib import report
from fctlib.experiment.records import ExplorationRecord


def test_one_row_per_setting_with_each_case_in_percent():
    record = ExplorationRecord(label="wide", overrides={"old": {"model": {"width": 16}}}, seed=0,
                               split="tune", wall_seconds=1.0,
                               cases={"old/old": {"all": {"top1": 0.5, "top5": 0.9,
                                                          "mAP": 0.25}}})
    table = report.exploration_table([record])
    assert table.to_dict("records") == [{
        "setting": "wide", "overrides": json.dumps({"old": {"model": {"width": 16}}}),
        "old/old top1": 50.0, "old/old mAP": 25.0}]


def _weights(label, weights):
    case = {"all": {"top1": 0.5, "top5": 0.9, "mAP": 0.25}}
    return ExplorationRecord(label=label, overrides={}, seed=0, split="tune", wall_seconds=1.0,
                             cases={f"bct/old w={w}": case for w in weights} | {"old/old": case})


def test_cases_sort_numerically_not_as_text():
    table = report.exploration_table([_weights("a", ["1.0", "10.0", "3.0"])])
    assert [c for c in table.columns if c.endswith("top1")] == [
        "bct/old w=1.0 top1", "bct/old w=3.0 top1", "bct/old w=10.0 top1", "old/old top1"]
    by_case = report.exploration_by_case(
        report.exploration_table([_weights("a", ["10.0", "3.0"]), _weights("b", ["2.0"])]))
    assert list(by_case.index) == ["bct/old w=2.0", "bct/old w=3.0", "bct/old w=10.0", "old/old"]
    assert list(by_case.columns) == [("a", "top1"), ("a", "mAP"), ("b", "top1"), ("b", "mAP")]
    assert pd.isna(by_case.at["bct/old w=2.0", ("a", "top1")])
    assert by_case.at["old/old", ("b", "mAP")] == 25.0
