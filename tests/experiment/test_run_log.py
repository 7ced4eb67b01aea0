"""The run log names every run behind a results folder's records, each with the steps still its
own; an interrupted run is named with the steps it finished; a log written before runs listed
their steps counts its seeds' every step."""

import json

from fctlib.experiment.run_log import (
    RunLog,
    earlier_runs_text,
    load_run_log,
    steps_text,
)

STEPS = ("00_data", "01_train_old", "09_methods")


def run(tmp_path, name, seeds, steps):
    """A run logging `steps` of each seed in turn (its provenance is just its name)."""
    log = RunLog(tmp_path, {"command": f"fct {name}", "git_commit": name, "seeds": seeds}, STEPS)
    for seed in seeds:
        for step in steps:
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


def test_a_log_without_steps_counts_every_step_of_its_seeds(tmp_path):
    (tmp_path / "last_run.json").write_text(json.dumps(
        {"command": "fct reproduce --runs-dir /scratch/runs", "git_commit": "old",
         "seeds": [0, 1]}))
    log = run(tmp_path, "new", [1], STEPS)
    assert log["earlier"][0]["steps"] == {"0": list(STEPS)}
    read = load_run_log(tmp_path)
    assert read["earlier"][0]["command"] == "fct reproduce --runs-dir <runs-dir>"
    assert earlier_runs_text(read, STEPS) == (
        "`fct reproduce --runs-dir <runs-dir>` at old (?): seed 0: every step")
    assert load_run_log(tmp_path / "nothing") == {}


def test_steps_in_words():
    assert steps_text({"0": list(STEPS), "1": list(STEPS)}, STEPS) == "seeds 0, 1: every step"
    assert steps_text({"0": ["09_methods"], "1": ["00_data", "01_train_old"],
                       "2": ["00_data", "01_train_old"]}, STEPS) == (
        "seed 0: 09_methods; seeds 1, 2: every step but 09_methods")
