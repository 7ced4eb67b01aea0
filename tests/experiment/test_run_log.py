"""The run log names every run behind a results folder's records, each with the steps still its
own; an interrupted run is named with the steps it finished; a log written before runs listed
their steps counts its seeds' every step; the records' own commits decide which run wrote them."""

import json

from fctlib.experiment.run_log import (
    RunLog,
    earlier_runs_text,
    load_run_log,
    steps_text,
)

STEPS = ("00_data", "01_train_old", "09_methods")
RECORD = {"00_data": "data", "01_train_old": "old", "09_methods": "methods"}


def write_record(tmp_path, seed, step, commit):
    """The record `step` writes for `seed`, holding only the commit it was written at."""
    path = tmp_path / "metrics" / f"seed{seed}" / f"{RECORD[step]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"commit": commit} if commit else {}))


def run(tmp_path, name, seeds, steps):
    """A run executing `steps` of each seed in turn: each writes its record at commit `name`,
    then the log (the run's provenance is just its name)."""
    log = RunLog(tmp_path, {"command": f"fct {name}", "git_commit": name, "seeds": seeds}, STEPS)
    for seed in seeds:
        for step in steps:
            write_record(tmp_path, seed, step, name)
            log.step_done(seed, step, 1.0)
    return json.loads((tmp_path / "last_run.json").read_text())


def test_a_partial_rerun_keeps_the_first_run_with_the_steps_still_its_own(tmp_path):
    assert "earlier" not in run(tmp_path, "all", [0, 1], STEPS)
    log = run(tmp_path, "only", [0], ["09_methods"])
    assert log["git_commit"] == "only" and log["steps"] == {"0": ["09_methods"]}
    assert log["earlier"] == [{"command": "fct all", "git_commit": "all", "seeds": [0, 1],
                               "wall_seconds": 1.0,
                               "steps": {"0": ["00_data", "01_train_old"], "1": list(STEPS)}}]
    log = run(tmp_path, "seed1", [1], STEPS)  # seed 1 again: the first run keeps seed 0's two
    assert [r["git_commit"] for r in log["earlier"]] == ["all", "only"]
    assert log["earlier"][0]["steps"] == {"0": ["00_data", "01_train_old"]}
    log = run(tmp_path, "again", [0, 1], STEPS)  # every record replaced: no earlier run
    assert "earlier" not in log and log["steps"] == {"0": list(STEPS), "1": list(STEPS)}


def test_an_interrupted_run_is_named_with_the_steps_it_finished(tmp_path):
    run(tmp_path, "stopped", [0], ["00_data"])  # killed during 01_train_old
    log = run(tmp_path, "resumed", [0], ["01_train_old", "09_methods"])
    assert log["earlier"][0]["steps"] == {"0": ["00_data"]}


def test_runs_beside_one_another_each_keep_the_other_s_steps(tmp_path):
    """Two runs into one folder at once (seed 0 beside seeds 1 2), their steps interleaved: the
    log names both with every step each finished, whichever wrote last, and no run "not logged"."""
    logs = {name: RunLog(tmp_path, {"command": f"fct {name}", "git_commit": "same",
                                    "date": "12:00"}, STEPS) for name in ("seed0", "seeds12")}
    turns = [("seed0", 0, "00_data"), ("seeds12", 1, "00_data"), ("seeds12", 1, "01_train_old"),
             ("seed0", 0, "01_train_old"), ("seeds12", 2, "00_data"), ("seed0", 0, "09_methods")]
    for name, seed, step in turns:
        write_record(tmp_path, seed, step, "same")
        logs[name].step_done(seed, step, 1.0)
    log = load_run_log(tmp_path, STEPS)
    assert log["command"] == "fct seed0" and log["steps"] == {"0": list(STEPS)}
    assert [(r["command"], r["steps"]) for r in log["earlier"]] == [
        ("fct seeds12", {"1": ["00_data", "01_train_old"], "2": ["00_data"]})]


def test_a_log_without_steps_counts_every_step_of_its_seeds(tmp_path):
    (tmp_path / "last_run.json").write_text(json.dumps(
        {"command": "fct reproduce --runs-dir /scratch/runs", "git_commit": "old",
         "seeds": [0, 1]}))
    for seed in (0, 1):
        for step in STEPS:
            write_record(tmp_path, seed, step, "old")
    log = run(tmp_path, "new", [1], STEPS)
    assert log["earlier"][0]["steps"] == {"0": list(STEPS)}
    read = load_run_log(tmp_path, STEPS)
    assert read["earlier"][0]["command"] == "fct reproduce --runs-dir <runs-dir>"
    assert earlier_runs_text(read, STEPS) == (
        "`fct reproduce --runs-dir <runs-dir>` at old (?): seed 0: every step")
    assert load_run_log(tmp_path / "nothing", STEPS) == {}


def test_records_rewritten_by_a_run_that_left_no_log_are_not_the_logged_runs(tmp_path):
    """A step re-run without a log entry (a run before logs listed --only steps) is taken from the
    run that claims it and named by its records' commit; its seeds group in words."""
    run(tmp_path, "all", [0, 1], STEPS)
    write_record(tmp_path, 0, "09_methods", "unlogged")
    write_record(tmp_path, 1, "09_methods", "unlogged")
    write_record(tmp_path, 1, "01_train_old", "unlogged")
    read = load_run_log(tmp_path, STEPS)
    assert read["steps"] == {"0": ["00_data", "01_train_old"], "1": ["00_data"]}
    assert read["earlier"] == [{"git_commit": "unlogged", "logged": False,
                                "steps": {"0": ["09_methods"], "1": ["01_train_old",
                                                                   "09_methods"]}}]
    assert earlier_runs_text(read, STEPS) == (
        "a run not logged, at unlogged: seed 0: 09_methods; seed 1: every step but 00_data")
    log = run(tmp_path, "next", [1], ["09_methods"])  # the next run keeps both, reconciled
    assert [(r["git_commit"], r["steps"]) for r in log["earlier"]] == [
        ("unlogged", {"0": ["09_methods"], "1": ["01_train_old"]}),
        ("all", {"0": ["00_data", "01_train_old"], "1": ["00_data"]})]


def test_a_step_without_its_record_is_no_runs_and_a_record_without_a_commit_stays(tmp_path):
    """A legacy log over seeds that lack some records (a partial seed) claims only the records
    there; a record naming no commit (written before records named theirs) cannot be disproved."""
    (tmp_path / "last_run.json").write_text(json.dumps(
        {"command": "fct reproduce", "git_commit": "abc123456789", "seeds": [0, 1]}))
    for step in STEPS:
        write_record(tmp_path, 0, step, "abc123456789-dirty" if step == "00_data" else "abc1234")
    write_record(tmp_path, 1, "00_data", "")
    read = load_run_log(tmp_path, STEPS)
    assert read["steps"] == {"0": list(STEPS), "1": ["00_data"]} and "earlier" not in read


def test_steps_in_words():
    assert steps_text({"0": list(STEPS), "1": list(STEPS)}, STEPS) == "seeds 0, 1: every step"
    assert steps_text({"0": ["09_methods"], "1": ["00_data", "01_train_old"],
                       "2": ["00_data", "01_train_old"]}, STEPS) == (
        "seed 0: 09_methods; seeds 1, 2: every step but 09_methods")
