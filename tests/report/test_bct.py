import pytest

from fctlib import report
from fctlib.suite.records import BCTRecord, SweepPoint


def _point(weight, cross, own):
    return SweepPoint(weight=weight, bct_old={"top1": cross, "mAP": cross / 2},
                      bct_bct={"top1": own, "mAP": own / 2}, score=cross)


def _record(chosen, crosses):
    sweep = [_point(w, c, 0.8) for w, c in zip((1.0, 3.0), crosses, strict=True)]
    return BCTRecord(cases={}, weight=chosen, sweep=sweep, history=[])


def test_sweep_means_over_seeds_and_counts_the_choices():
    records = {0: {"bct": _record(1.0, (0.40, 0.30))}, 1: {"bct": _record(3.0, (0.20, 0.50))}}
    table = report.bct_sweep_table(report.sweep_rows(records)).set_index("weight")
    assert table.at[1.0, "tune_bct_old_top1"] == pytest.approx(30.0)
    assert table.at[3.0, "tune_bct_old_mAP"] == pytest.approx(20.0)
    assert table.at[3.0, "tune_bct_bct_top1"] == pytest.approx(80.0)
    assert table["seeds_choosing"].to_dict() == {1.0: 1, 3.0: 1}
    assert report.bct_sweep_table(report.sweep_rows({0: {}})).empty
