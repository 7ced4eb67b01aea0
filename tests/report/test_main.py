"""The report's main comparison, claims, published numbers, written tables and provenance."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fctlib import report
from fctlib.experiment.records import (
    BCTRecord,
    NewRecord,
    OldRecord,
    SideInfoSizeRecord,
    TransformationRecord,
)


def _split(top1, top5, mAP):
    values = {"top1": top1, "top5": top5, "mAP": mAP}
    return {"all": values, "old": values, "new": values}


def _seed(old, new, fct_side):
    return {
        "old": OldRecord(cases={"old/old": _split(old, 0.5, old / 2)}, history=[]),
        "new": NewRecord(cases={"new/new": _split(new, 0.9, new / 2)}, diagnostic={},
                         history=[]),
        "transformation": TransformationRecord(
            cases={"fct/side": _split(fct_side, 0.8, fct_side / 2),
                   "fct/no-side": _split(old + 0.01, 0.7, old / 2 + 0.005)},
            side_info_dim=8, history={}),
        "side_info_size": SideInfoSizeRecord.from_json({"rows": [
            {"side_info_dim": 0, "metrics": _split(0.4, 0.6, 0.2)},
            {"side_info_dim": 8, "metrics": _split(0.5, 0.7, 0.3)}]}),
    }


RECORDS = {0: _seed(0.30, 0.60, 0.50), 1: _seed(0.40, 0.70, 0.45)}


def test_main_table_mean_and_std_over_seeds():
    main = report.main_table(report.case_rows(RECORDS, "l2")).set_index("case")
    assert list(main.index) == ["old/old", "new/new", "fct/no-side", "fct/side"]
    assert main.at["old/old", "top1"] == pytest.approx(35.0)
    assert main.at["old/old", "top1_std"] == pytest.approx(np.std([30, 40], ddof=1), abs=0.01)
    assert main.at["fct/side", "mAP"] == pytest.approx(23.75, abs=0.01)
    assert (main["seeds"] == 2).all()


def test_one_seeds_cases_make_the_same_long_rows():
    cases = {**RECORDS[1]["old"].cases, **RECORDS[1]["transformation"].cases}
    frame = report.case_frame({"l2": cases}, seed=1)
    assert set(frame["seed"]) == {1} and len(frame) == 3 * 3
    steps = {step: RECORDS[1][step] for step in ("old", "transformation")}
    pd.testing.assert_frame_equal(frame, report.case_rows({1: steps}, "l2"))


def test_by_split_table_has_three_splits_per_case():
    table = report.main_by_split_table(report.case_rows(RECORDS, "l2"))
    assert set(table["split"]) == {"old", "new", "all"}
    assert len(table) == 4 * 3


def test_claim_verdicts_follow_every_seed():
    claims = report.claims_table(report.case_rows(RECORDS, "l2")).set_index(["claim", "metric"])
    # fct/side - old/old: +20 and +5 points -> holds in both seeds
    assert claims.at[("old/old < fct/no-side", "top1"), "verdict"] == "holds"
    # fct/side <= new/new: 50 <= 60 and 45 <= 70 -> holds
    assert claims.at[("fct/side <= new/new", "top1"), "verdict"] == "holds"
    # fct/no-side < fct/side: 31 < 50 (holds), 41 < 45 (holds)
    assert claims.at[("fct/no-side < fct/side", "mAP"), "seeds_agreeing"] == "2/2"
    flipped = {0: _seed(0.30, 0.60, 0.50), 1: _seed(0.40, 0.70, 0.35)}
    claims = report.claims_table(report.case_rows(flipped, "l2")).set_index(["claim", "metric"])
    # seed 1: fct/side 35 < fct/no-side 41 -> seeds disagree
    assert claims.at[("fct/no-side < fct/side", "top1"), "verdict"] == "unresolved"
    failing = {0: _seed(0.30, 0.60, 0.20), 1: _seed(0.40, 0.70, 0.20)}
    claims = report.claims_table(report.case_rows(failing, "l2")).set_index(["claim", "metric"])
    assert claims.at[("fct/no-side < fct/side", "top1"), "verdict"] == "fails"
    assert claims.at[("fct/no-side < fct/side", "top1"), "margin"] < 0
    assert ("bct/old > old/old", "top1") not in claims.index  # no BCT rows: not evaluated


def _both_distances(records, cosine_shift):
    """`records` with every case also under cosine, each metric `cosine_shift` higher there."""
    def shifted(cases):
        return {case: {split: {m: v + cosine_shift for m, v in values.items()}
                       for split, values in by_split.items()} for case, by_split in cases.items()}
    return {seed: {step: (dataclasses.replace(record, by_distance={
        "l2": record.cases, "cosine": shifted(record.cases)}) if hasattr(record, "cases")
        else record) for step, record in steps.items()} for seed, steps in records.items()}


def test_cases_under_both_distances_are_rows_marked_in_or_outside_their_protocol():
    with_bct = {seed: {**steps, "bct": BCTRecord(weight=1.0, history=[], cases={
        "bct/old": _split(0.25, 0.5, 0.1), "bct/bct": _split(0.5, 0.8, 0.2)})}
        for seed, steps in RECORDS.items()}
    long = report.case_rows(_both_distances(with_bct, 0.1), "l2")
    main = report.main_table(long).set_index(["case", "distance"])
    assert list(main.index.get_level_values("distance")) == ["l2"] * 6 + ["cosine"] * 6
    assert main.at[("old/old", "cosine"), "top1"] == pytest.approx(45.0)
    assert main.at[("old/old", "l2"), "top1"] == pytest.approx(35.0)
    protocol = main["in_protocol"].to_dict()
    assert protocol[("bct/old", "cosine")] and not protocol[("bct/old", "l2")]  # openBCT, BT-2
    assert protocol[("fct/side", "l2")] and not protocol[("fct/side", "cosine")]  # ml-fct
    assert protocol[("old/old", "l2")] and protocol[("old/old", "cosine")]
    one = report.at_distance(report.main_table(long), "cosine")
    assert list(one["case"]) == list(report.CASE_ORDER) and set(one["distance"]) == {"cosine"}
    by_split = report.main_by_split_table(long)
    assert len(by_split) == 6 * 2 * 3 and "in_protocol" in by_split


def test_claims_carry_a_verdict_under_each_distance():
    # under cosine fct/side sits 30 points higher than under L2, the other cases 10: only there
    # does fct/side beat new/new
    records = _both_distances(RECORDS, 0.1)
    for steps in records.values():
        t = steps["transformation"]
        t.by_distance["cosine"]["fct/side"] = {s: {m: v + 0.2 for m, v in values.items()}
                                               for s, values in t.by_distance["cosine"][
                                                   "fct/side"].items()}
    claims = report.claims_table(report.case_rows(records, "l2")).set_index(
        ["claim", "metric", "distance"])
    assert claims.at[("fct/side <= new/new", "top1", "l2"), "verdict"] == "holds"
    # cosine: fct/side 80 and 75 against new/new 70 and 80: fails in seed 0, holds in seed 1
    assert claims.at[("fct/side <= new/new", "top1", "cosine"), "verdict"] == "unresolved"
    assert claims.at[("fct/side <= new/new", "top1", "cosine"), "margin"] == pytest.approx(-2.5)
    assert claims.at[("fct/no-side < fct/side", "top1", "cosine"), "margin"] == pytest.approx(
        claims.at[("fct/no-side < fct/side", "top1", "l2"), "margin"] + 20)
    assert set(claims.index.get_level_values("distance")) == {"l2", "cosine"}
    assert "cosine" in report.claims_sentence(report.claims_table(report.case_rows(records, "l2")))


def test_records_before_by_distance_count_under_the_presets_distance():
    long = report.case_rows(RECORDS, "cosine")
    assert set(long["distance"]) == {"cosine"}
    assert report.main_table(long)["in_protocol"].tolist() == [True, True, False, False]


def test_the_report_s_protocols_are_the_registry_s():
    from fctlib.methods.registry import METHODS

    for method, protocol in report.CASE_PROTOCOLS.items():
        assert METHODS[method].protocol == protocol


def test_gap_closed_of_published_cifar_run():
    gaps = report.published_gaps()["published CIFAR-100"].set_index("case")
    # DESIGN: fct/side closes about 72% of the top-1 gap and 79% of the mAP gap on CIFAR-100
    assert gaps.at["fct/side", "top1_gap_closed"] == pytest.approx((50.2 - 34.2) / (56.5 - 34.2),
                                                                   abs=1e-3)
    assert gaps.at["fct/side", "top1_gap_closed"] == pytest.approx(0.72, abs=0.01)
    assert gaps.at["fct/side", "mAP_gap_closed"] == pytest.approx(0.79, abs=0.01)


def _cases(**top1):
    """A main table of one seed: each case's top1 (%) as given, mAP half of it."""
    cases = [c.replace("_", "/").replace("no/side", "no-side") for c in top1]
    return pd.DataFrame({"case": cases, "top1": list(top1.values()),
                         "mAP": [v / 2 for v in top1.values()]})


def test_gap_under_one_point_is_too_small_to_measure():
    # the smoke report's case: old/old and new/new 0.6 points apart gave a "share" of 14.17
    gaps = report.gap_closed(_cases(old_old=20.0, new_new=20.6, fct_side=28.5)).set_index("case")
    assert gaps.at["fct/side", "top1_gap_closed"] == report.GAP_TOO_SMALL
    assert gaps.at["fct/side", "mAP_gap_closed"] == report.GAP_TOO_SMALL  # 0.3 points
    gaps = report.gap_closed(_cases(old_old=20.0, new_new=21.0, fct_side=20.5)).set_index("case")
    assert gaps.at["fct/side", "top1_gap_closed"] == 0.5  # one point: measured
    assert gaps.at["fct/side", "mAP_gap_closed"] == report.GAP_TOO_SMALL


def test_without_old_or_new_there_is_no_gap_to_close():
    # a results folder of 00 and 04 alone (a lent GPU session's): bct/old and bct/bct, no new/new
    gaps = report.gap_closed(_cases(old_old=20.0, bct_old=21.0)).set_index("case")
    assert gaps.at["bct/old", "top1_gap_closed"] == report.GAP_UNMEASURED


def test_new_below_old_leaves_no_gap_to_close():
    # a smoke run: new/new 4 points below old/old gave fct/no-side a "share" of 11.83
    gaps = report.gap_closed(_cases(old_old=60.0, new_new=56.0, fct_no_side=12.67))
    assert gaps.set_index("case").at["fct/no-side", "top1_gap_closed"] == report.GAP_REVERSED


def test_gap_within_the_seed_spread_is_too_small_to_measure():
    # old/old 35 and new/new 65 (top-1), each with a spread of 7.07 over the two seeds: measured
    main = report.main_table(report.case_rows(RECORDS, "l2"))
    assert report.gap_closed(main).set_index("case").at["fct/side", "top1_gap_closed"] == \
        pytest.approx((47.5 - 35) / 30, abs=1e-3)
    noisy = {0: _seed(0.30, 0.60, 0.50), 1: _seed(0.50, 0.30, 0.45)}  # 40 and 45, spread 35
    gaps = report.gap_closed(report.main_table(report.case_rows(noisy, "l2"))).set_index("case")
    assert gaps.at["fct/side", "top1_gap_closed"] == report.GAP_TOO_SMALL
    table = report.gap_closed_table(report.paper_comparison(
        report.main_table(report.case_rows(noisy, "l2")), "toy"))
    assert table.at["fct/side", ("top1 gap closed", "ours")] == "gap too small to measure"
    assert table.at["fct/side", ("top1 gap closed", "CIFAR-100")] == round(16 / 22.3, 3)


def test_paper_comparison_keeps_published_numbers_in_their_own_columns():
    main = report.main_table(report.case_rows(RECORDS, "l2"))
    table = report.paper_comparison(main, "toy").set_index("case")
    assert table.at["fct/side", "ours_top1"] == pytest.approx(47.5)
    assert table.at["fct/side", "cifar100_top1"] == 50.2
    assert table.at["fct/side", "imagenet_mAP"] == 44.0
    assert table.at["fct/side", "ours_top1_gap_closed"] == pytest.approx((47.5 - 35) / (65 - 35),
                                                                         abs=1e-3)


def test_paper_comparison_has_bt2_cifar_rows_under_cosine():
    """BT-2's README at 8282360: old/old 33.6/55.4/24.4, new/new 62.7/74.6/49.9, BCT new/old
    25.0/62.1/24.7, BT-2 new/old 38.7/64.6/27.7 (top-1/top-5/mAP, cosine)."""
    with_bct = {seed: {**steps, "bct": SimpleNamespace(by_distance={}, cases={
        "bct/old": _split(0.3, 0.5, 0.1), "bct/bct": _split(0.5, 0.8, 0.2)})}
        for seed, steps in RECORDS.items()}
    main = report.main_table(report.case_rows(with_bct, "l2"))
    table = report.paper_comparison(main, "toy").set_index("case")
    expected = {"old/old": (33.6, 55.4, 24.4), "new/new": (62.7, 74.6, 49.9),
                "bct/old": (25.0, 62.1, 24.7), "bt2/old": (38.7, 64.6, 27.7)}
    for case, values in expected.items():
        got = tuple(table.loc[case, [f"cifar100_bt2_{m}" for m in ("top1", "top5", "mAP")]])
        assert got == values, case
    assert set(table["cifar100_bt2_distance"]) == {"cosine"}
    assert set(table["cifar100_distance"]) == {"l2"}
    assert table.at["fct/side", "cifar100_top1"] == 50.2  # ml-fct's columns unchanged
    assert "8282360" in report.PUBLISHED_SOURCE
    gaps = report.published_gaps()["published CIFAR-100 BT-2"].set_index("case")
    assert gaps.at["bct/old", "top1_gap_closed"] == pytest.approx((25.0 - 33.6) / (62.7 - 33.6),
                                                                  abs=1e-3)


def test_paper_comparison_of_old_and_new_alone():
    """Only the independent models trained so far (a run stopped after notebook 03)."""
    alone = {0: {s: RECORDS[0][s] for s in ("old", "new")}}
    main = report.main_table(report.case_rows(alone, "l2"))
    assert report.gap_closed(main).empty and "case" in report.gap_closed(main)
    table = report.paper_comparison(main, "toy")
    # ours where measured, then the published-only cases (BT-2's own model) with no ours
    assert list(table["case"]) == ["old/old", "new/new", "bt2/old", "bt2/bt2"]
    assert table.set_index("case")["ours_top1"].isna().to_dict() == {
        "old/old": False, "new/new": False, "bt2/old": True, "bt2/bt2": True}


def test_side_info_size_table_and_written_tables(tmp_path):
    sizes = report.side_info_size_table(report.side_info_size_rows(RECORDS))
    assert list(sizes["side_info_dim"]) == [0, 8]
    assert sizes["top1"].tolist() == [40.0, 50.0]
    info = {"git_commit": "abc", "preset": "toy", "packages": {"torch": "x"}}
    report.write_table(sizes, tmp_path, "side_info_size", info)
    text = (tmp_path / "side_info_size.csv").read_text()
    assert text.startswith("# git_commit: abc\n")
    back = report.read_table(tmp_path / "side_info_size.csv")
    pd.testing.assert_frame_equal(back[["side_info_dim", "top1"]],
                                  sizes[["side_info_dim", "top1"]], check_dtype=False)
    assert "side_info_dim |" in (tmp_path / "side_info_size.md").read_text()


def test_metrics_frame_in_percent():
    frame = report.metrics_frame({"old/old": _split(0.25, 0.5, 0.125)})
    assert frame.loc["old/old", ("all", "top1")] == 25.0


def test_provenance_names_the_commits_that_trained_the_artifacts(tmp_path):
    (tmp_path / "last_run.json").write_text('{"git_commit": "run", "preset": "toy"}')
    info = report.run_provenance(tmp_path, "toy", RECORDS)
    assert info["seeds"] == [0, 1] and info["git_commit"] == "run"
    assert info["artifact_commits"] == "unrecorded"
    trained = {0: {**RECORDS[0], "old": OldRecord(cases={}, history=[],
                                                  artifacts={"old": "c0ffee"})},
               1: {**RECORDS[1], "new": NewRecord(cases={}, diagnostic={}, history=[],
                                                  artifacts={"new": "abc123"}),
                   "old": OldRecord(cases={}, history=[], artifacts={"old": "c0ffee"})}}
    info = report.run_provenance(tmp_path, "toy", trained)
    assert info["artifact_commits"] == "abc123, c0ffee"
    report.write_table(pd.DataFrame({"a": [1]}), tmp_path, "t", info)
    assert "# artifact_commits: abc123, c0ffee\n" in (tmp_path / "t.csv").read_text()
    assert "data" not in info  # records made before they named their data


def test_provenance_names_the_data_the_records_were_made_from(tmp_path):
    fashion = {"key": "k", "train": "a" * 64, "test": "b" * 64}
    made = {0: {"old": OldRecord(cases={}, history=[], data=fashion)},
            1: {"old": OldRecord(cases={}, history=[], data={**fashion, "key": "split"})}}
    info = report.run_provenance(tmp_path, "toy", made)
    assert info["data"] == f"train {'a' * 12}, test {'b' * 12}"
    made[1]["new"] = NewRecord(cases={}, diagnostic={}, history=[],
                               data={**fashion, "train": "c" * 64})
    info = report.run_provenance(tmp_path, "toy", made)
    assert info["data"] == (f"train {'a' * 12}, test {'b' * 12} and train {'c' * 12}, test "
                            f"{'b' * 12}: the records were made from different data")
    report.write_table(pd.DataFrame({"a": [1]}), tmp_path, "t", info)
    assert f"# data: train {'a' * 12}" in (tmp_path / "t.csv").read_text()


def test_one_seed_shows_the_mean_only_without_a_fake_std():
    long = report.case_rows({0: RECORDS[0]}, "l2")
    main = report.main_table(long)
    assert not [c for c in main.columns if c.endswith("_std")]
    assert (main["seeds"] == 1).all()
    assert not [c for c in report.main_by_split_table(long).columns if c.endswith("_std")]
    mixed = report.side_info_size_table(report.side_info_size_rows(
        {0: RECORDS[0], 1: {"side_info_size": RECORDS[1]["side_info_size"]}}))
    assert mixed["top1_std"].notna().all()  # two seeds: a real std


def test_last_run_is_read_without_machine_paths(tmp_path):
    from fctlib.io import save_json
    from fctlib.report.common import load_last_run

    assert load_last_run(tmp_path) == {}
    save_json({"command": "fct reproduce --runs-dir /work/runs", "wall_seconds": 1.0},
              tmp_path / "last_run.json")
    assert load_last_run(tmp_path)["command"] == "fct reproduce --runs-dir <runs-dir>"
    save_json({"wall_seconds": 1.0}, tmp_path / "last_run.json")  # an older run's, no command
    assert load_last_run(tmp_path) == {"wall_seconds": 1.0}


def test_the_provenance_names_the_earlier_runs_behind_the_records(tmp_path):
    from fctlib.experiment.records import STEP_RECORDS
    from fctlib.io import save_json
    from fctlib.paths import STEPS
    from fctlib.report.summary import cost_line

    for name, record in STEP_RECORDS.items():  # the records as the two runs wrote them
        save_json({"commit": "b" if record.NOTEBOOK == "09_methods" else "a"},
                  tmp_path / "metrics" / "seed0" / f"{name}.json")
        save_json({"commit": "a"}, tmp_path / "metrics" / "seed1" / f"{name}.json")
    save_json({"command": "fct reproduce --only 09_methods", "git_commit": "b", "wall_seconds": 60,
               "steps": {"0": ["09_methods"]},
               "earlier": [{"command": "fct reproduce --runs-dir /work/runs", "git_commit": "a",
                            "date": "d", "steps": {"0": [s for s in STEPS if s != "09_methods"],
                                                   "1": list(STEPS)}}]},
              tmp_path / "last_run.json")
    info = report.run_provenance(tmp_path, "toy", RECORDS)
    assert info["last_run_steps"] == "seed 0: 09_methods" and "earlier" not in info
    assert "steps" not in info  # a table's coverage names the steps it reads under that key
    assert info["earlier_runs"] == ("`fct reproduce --runs-dir <runs-dir>` at a (d): seed 0: "
                                    "every step but 09_methods; seed 1: every step")
    report.write_table(pd.DataFrame({"a": [1]}), tmp_path, "t", info)
    assert f"# earlier_runs: {info['earlier_runs']}\n" in (tmp_path / "t.csv").read_text()
    assert f"records of earlier runs: {info['earlier_runs']}" in cost_line(info, {})
