"""A table counts a seed only with every step it reads; partial seeds, seeds of different commits
and sections no seed ran are said, never averaged in silently."""

import json

from fctlib import report
from tests.report.test_main import RECORDS, _seed

CASE_STEPS = ("old", "new", "bct", "transformation")


def _partial():
    """Seed 0 complete; seed 1 made by `--only 00_data 01_train_old`: old/old only."""
    return {0: RECORDS[0], 1: {"old": RECORDS[1]["old"]}}


def test_a_partial_seed_is_left_out_with_a_note_naming_it_and_its_missing_steps():
    records = _partial()
    cov = report.coverage(records, CASE_STEPS)
    assert cov.seeds == (0,) and cov.steps == ("old", "new", "transformation")
    assert cov.absent == ("bct",)
    assert cov.left_out == {1: ("new", "transformation")}
    note = cov.note()
    assert "Seeds 0 · steps 01_train_old, 03_train_new, 05_transformation" in note
    assert "⚠ Left out (partial seeds): seed 1 lacks 03_train_new, 05_transformation." in note
    long = report.case_rows(cov.select(records), "l2")
    main = report.main_table(long)
    assert (main["seeds"] == 1).all()  # old/old is not averaged over a second seed
    claims = report.claims_table(long)
    assert set(claims["verdict"]) == {"holds"} and set(claims["seeds_agreeing"]) == {"1/1"}
    # without the coverage, the partial seed flips the claims to unresolved: what it prevents
    silent = report.claims_table(report.case_rows(records, "l2"))
    assert "unresolved" in set(silent["verdict"])


def test_complete_seeds_give_no_warning():
    cov = report.coverage(RECORDS, CASE_STEPS)
    assert cov.seeds == (0, 1) and not cov.left_out and not cov.mixed_commits
    assert "⚠" not in cov.note() and "commit unrecorded" in cov.note()
    assert report.coverage_warnings({"Main": cov}) == []


def _committed(seed_records, commit):
    out = {}
    for step, record in seed_records.items():
        copy = type(record).from_json(record.to_json())
        copy.commit = commit
        out[step] = copy
    return out


def test_seeds_of_different_commits_produce_a_note_naming_seed_and_commit():
    # seed 0 re-made by `make reproduce` today; seed 1 still the committed, unrecorded one
    records = {0: _committed(RECORDS[0], "abc123"), 1: RECORDS[1]}
    cov = report.coverage(records, CASE_STEPS)
    assert cov.seeds == (0, 1) and cov.mixed_commits
    assert ("⚠ Measured by different commits, averaged together: seed 0: abc123; "
            "seed 1: unrecorded.") in cov.note()
    assert report.coverage_warnings({"Main comparison": cov, "BCT": cov}) == [
        "seeds of different commits averaged in 2 of 2 sections (Main comparison, BCT)"]
    partial = report.coverage(_partial(), CASE_STEPS)
    assert report.coverage_warnings({"Main": partial, "BCT": report.coverage(
        _partial(), ("side_info_size",))}) == [
        "seed(s) 1 left out as partial in 2 of 2 sections (Main, BCT)"]
    same = {0: _committed(RECORDS[0], "abc123"), 1: _committed(RECORDS[1], "abc123")}
    assert not report.coverage(same, CASE_STEPS).mixed_commits


def test_written_tables_carry_their_coverage(tmp_path):
    cov = report.coverage(_partial(), CASE_STEPS)
    stamped = cov.stamp({"git_commit": "run"})
    assert stamped["seeds"] == [0] and stamped["left_out"].startswith("seed 1 lacks 03_train_new")
    report.write_table(report.main_table(report.case_rows(cov.select(_partial()), "l2")), tmp_path,
                       "main", stamped)
    assert "# seeds: [0]\n" in (tmp_path / "main.csv").read_text()


def test_an_absent_section_gives_its_reason_in_one_line(tmp_path):
    cov = report.coverage({0: _seed(0.3, 0.6, 0.5)}, ("ablations",))
    assert not cov.ran and cov.absent == ("ablations",)
    line = report.not_run_line(cov, "toy", report.load_not_run(tmp_path))
    assert line == ("Not run for toy: no seed has metrics of 08_ablations. `fct reproduce "
                    "--preset toy --only 08_ablations 99_report` adds it.")
    (tmp_path / "not_run.json").write_text(json.dumps(
        {"steps": {"08_ablations": "an hour on the CPU"}, "methods": {}}))
    line = report.not_run_line(cov, "toy", report.load_not_run(tmp_path))
    assert "08_ablations (an hour on the CPU)" in line and "\n" not in line


def _weighed(seed_records, weights_by_step):
    """A copy of a seed's records, each step naming the weights it used: {step: {name: digest}}."""
    out = {}
    for step, record in seed_records.items():
        copy = type(record).from_json(record.to_json())
        copy.weights = dict(weights_by_step.get(step, {}))
        out[step] = copy
    return out


def test_a_seed_whose_steps_used_different_trainings_of_one_model_is_flagged():
    # seed 0's 05 ran on another machine, which trained old again (other weights); new agrees
    seed0 = _weighed(RECORDS[0], {"old": {"old": "aaaa"}, "new": {"new": "cccc"},
                                  "transformation": {"old": "bbbb", "new": "cccc"}})
    seed1 = _weighed(RECORDS[1], {"old": {"old": "dddd"}, "transformation": {"old": "dddd"}})
    records = {0: seed0, 1: seed1}
    cov = report.coverage(records, CASE_STEPS)
    assert cov.mixed_models and cov.retrained == {0: ("old",)}
    assert ("⚠ One seed, models trained apart (its steps used different weights of one model, so "
            "its numbers are not of one set of models): seed 0: old.") in cov.note()
    assert cov.stamp({})["models_trained_apart"] == "seed 0: old"
    assert report.coverage_warnings({"Main": cov}) == [
        "a seed's steps used models trained apart (different weights) in 1 of 1 sections (Main)"]
    assert report.models_trained_apart(records) == "seed 0: old"
    # a section not reading the step that trained old apart is not flagged
    assert not report.coverage(records, ("old", "new")).mixed_models
    # one training per model in each seed (seeds differ from each other, as they must): no flag
    agreeing = {0: _weighed(RECORDS[0], {"old": {"old": "aaaa"},
                                         "transformation": {"old": "aaaa"}}), 1: seed1}
    cov = report.coverage(agreeing, CASE_STEPS)
    assert not cov.mixed_models and "⚠" not in cov.note()
    assert "models_trained_apart" not in cov.stamp({})
    assert report.models_trained_apart(agreeing) == ""
