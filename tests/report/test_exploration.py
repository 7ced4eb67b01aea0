import json

from fctlib import report
from fctlib.suite.records import ExplorationRecord


def test_one_row_per_setting_with_each_case_in_percent():
    record = ExplorationRecord(label="wide", overrides={"old": {"model": {"width": 16}}}, seed=0,
                               split="tune", wall_seconds=1.0,
                               cases={"old/old": {"all": {"top1": 0.5, "top5": 0.9,
                                                          "mAP": 0.25}}})
    table = report.exploration_table([record])
    assert table.to_dict("records") == [{
        "setting": "wide", "overrides": json.dumps({"old": {"model": {"width": 16}}}),
        "old/old top1": 50.0, "old/old mAP": 25.0}]
