"""The report's opening: verdicts, headline numbers beside the published ones, and the cost."""

import json

import pandas as pd

from fctlib import report
from fctlib.experiment.records import BCTRecord
from fctlib.report import summary
from tests.report.test_main import RECORDS, _split


def _with_bct(records, bct_old):
    bct = BCTRecord(cases={"bct/old": _split(bct_old, 0.4, bct_old / 2),
                           "bct/bct": _split(0.55, 0.8, 0.27)}, weight=1.0, sweep=[],
                    history=[])
    return {seed: {**steps, "bct": bct} for seed, steps in records.items()}


def test_the_summary_lists_the_verdicts_of_records_built_here():
    long = report.case_rows(_with_bct(RECORDS, bct_old=0.20), "l2")
    table = summary.verdict_table(report.claims_table(long))
    assert list(table.columns) == ["top1 l2", "mAP l2"]
    assert list(table.index) == ["old/old < fct/no-side", "fct/no-side < fct/side",
                                 "fct/side <= new/new", "bct/old > old/old",
                                 "fct/side > bct/old", "bct/bct <= new/new"]
    # bct/old 20 against old/old 30 and 40: fails in both seeds by 15 points on average
    assert table.at["bct/old > old/old", "top1 l2"] == "fails -15.00 (0/2)"
    assert table.at["fct/side <= new/new", "top1 l2"] == "holds +17.50 (2/2)"


def test_the_summary_puts_the_headline_numbers_beside_the_published_ones():
    main = report.main_table(report.case_rows(_with_bct(RECORDS, bct_old=0.20), "l2"))
    table = report.gap_closed_table(report.paper_comparison(main, "toy"))
    assert list(table.index) == ["old/old", "new/new", "bct/old", "bct/bct", "fct/no-side",
                                 "fct/side"]
    assert table.at["fct/side", ("top1 (%)", "ours")] == 47.5
    assert table.at["fct/side", ("top1 gap closed", "ours")] == round((47.5 - 35) / 30, 3)
    assert table.at["fct/side", ("top1 gap closed", "CIFAR-100")] == round(16 / 22.3, 3)
    assert pd.isna(table.at["bct/old", ("top1 gap closed", "CIFAR-100")])  # none published
    assert table.columns.get_level_values(0).nunique() == 4  # one clear table, not transposed


def test_backfilling_verdicts_name_what_does_not_hold():
    claims = pd.DataFrame([
        {"side_info_dim": 16, "claim": "a", "metric": "top1", "verdict": "holds",
         "margin": 1.0, "seeds_agreeing": "1/1"},
        {"side_info_dim": 0, "claim": "b", "metric": "mAP", "verdict": "fails",
         "margin": -0.5, "seeds_agreeing": "0/1"}])
    assert summary.backfilling_verdicts(claims) == (
        "FastFill (area under the backfilling curve): 16-d side-info: 1 of 1 hold. "
        "no side-info: 0 of 1 hold; b (mAP) fails -0.50.")


def test_the_cost_comes_from_the_last_run_and_the_timings(tmp_path):
    for seed, times in ((0, {"00_data": 10, "01_train_old": 590}), (1, {"00_data": 20})):
        folder = tmp_path / "notebooks" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "timings.json").write_text(json.dumps(times))
    timings = summary.load_timings(tmp_path)
    assert timings == {0: {"00_data": 10, "01_train_old": 590}, 1: {"00_data": 20}}
    line = summary.cost_line({"command": "fct reproduce", "git_commit": "abc", "date": "d",
                              "machine": "m", "wall_seconds": 1692.0}, timings)
    assert line == ("Cost: last run `fct reproduce` at commit abc (d, m): 1,692 s (28 min); "
                    "step times as last recorded (`timings.json`): seed 0 600 s (10 min) over "
                    "2 notebooks, seed 1 20 s (0 min) over 1 notebooks.")
    assert summary.cost_line({}, {}) == "Cost: not recorded."


def test_no_compared_cases_give_an_empty_headline_table():
    main = report.main_table(report.case_rows({0: {}}, "l2"))
    assert report.gap_closed_table(report.paper_comparison(main, "toy")).empty


def test_the_report_opens_with_the_presets_purpose_and_a_tests_only_warning():
    from fctlib.experiment.config import load_preset

    smoke = load_preset("smoke")
    html = summary.preset_intro(smoke.name, smoke.description, [0])
    assert "<code>smoke</code></b> (seeds 0): Fashion-MNIST, 60 training images" in html
    assert "<details" not in html  # visible, not folded
    assert "tiny networks trained 1-2 epochs" in html and "say nothing about the methods" in html
    default = load_preset("fashion-mnist")
    html = summary.preset_intro(default.name, default.description, [0, 1, 2])
    assert "(seeds 0, 1, 2): Fashion-MNIST, old model on classes 0-4" in html
    assert "tests-only" not in html and "a &lt; b" in summary.preset_intro("x", "a < b", [])
