"""Which runs made a results folder: `results/<preset>/last_run.json` holds the provenance of the
last `fct reproduce` that executed a step (its command, commit, machine, wall time and the steps
it executed, by seed) and, under `earlier`, each run before it whose records it did not all
replace, with the steps still its own. A folder made by one run names one; a resumed run, an
`--only` run or a second seed added later name every run behind the records. Updated after every
step, so an interrupted run is named with the steps it finished, and read again each time under a
lock, so runs beside one another into one folder (seeds 1 2 beside seed 0) each keep the other's
steps. Read against the records' own commits, so a step re-run by a run that left no log is not
counted as an earlier run's (torch-free)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from fctlib.experiment.provenance import portable_command
from fctlib.experiment.records import STEP_RECORDS
from fctlib.io import load_json_if_exists, save_json

RUN_LOG = "last_run.json"


class RunLog:
    """This run's entry in a results folder's run log, written after each step the run executes
    (a run that executes none leaves the log as it was) over the other runs the log names then."""

    def __init__(self, results_dir: str | Path, provenance: dict, all_steps: tuple[str, ...]):
        self.folder, self.all_steps = Path(results_dir), all_steps
        self.run = {**provenance, "steps": {}}

    def step_done(self, seed: int, step: str, wall_seconds: float) -> None:
        """Count `step` of `seed` as this run's (no other run's any more) and save the log: this
        run last, every other run it names now (one beside this one included) before it."""
        self.run["steps"].setdefault(str(seed), []).append(step)
        self.run["wall_seconds"] = round(wall_seconds, 1)
        with _locked(self.folder):
            log = load_run_log(self.folder, self.all_steps)
            others = [run for run in ([*log.pop("earlier", []), log] if log else [])
                      if not _same_run(run, self.run)]
            kept = [run for run in (_without(run, self.run["steps"]) for run in others)
                    if run["steps"]]
            save_json({**self.run, "earlier": kept} if kept else self.run, self.folder / RUN_LOG)


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on `folder` (flock), so that runs beside one another read and write
    its log in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _same_run(a: dict, b: dict) -> bool:
    """Whether two log entries are one run's (its command, commit and start date)."""
    return all(a.get(key) == b.get(key) for key in ("command", "git_commit", "date"))


def load_run_log(results_dir: str | Path, all_steps: tuple[str, ...]) -> dict:
    """The run log ({} if absent) as the records bear it out: each run keeps the steps whose
    records it wrote (a record of another commit, or none, takes a step from it; a run logged
    before runs listed their steps claims every step of its seeds), and records no logged run
    wrote are named by their commit (`"logged": false`). Commands without machine paths."""
    log = load_json_if_exists(Path(results_dir) / RUN_LOG) or {}
    if not log:
        return {}
    last, *earlier = [log, *log.pop("earlier", [])]
    written = record_commits(results_dir)
    claimed: set[tuple[str, str]] = set()
    for run in [last, *reversed(earlier)]:  # the newest run first: a record is the last one's
        if "command" in run:
            run["command"] = portable_command(run["command"])
        steps = run.get("steps") or _every_step(run, all_steps)
        run["steps"] = {}
        for seed, names in steps.items():
            for step in names:
                commit = written.get(seed, {}).get(step)
                if commit is not None and (seed, step) not in claimed and (
                        not commit or _same_commit(commit, run.get("git_commit", ""))):
                    run["steps"].setdefault(seed, []).append(step)
                    claimed.add((seed, step))
    unlogged: dict[str, dict[str, list[str]]] = {}
    for seed, commits in written.items():
        for step, commit in commits.items():
            if commit and (seed, step) not in claimed:
                unlogged.setdefault(commit, {}).setdefault(seed, []).append(step)
    earlier = [run for run in earlier if run["steps"]] + [
        {"git_commit": commit, "logged": False, "steps": steps}
        for commit, steps in unlogged.items()]
    return {**last, "earlier": earlier} if earlier else last


def record_commits(results_dir: str | Path) -> dict[str, dict[str, str]]:
    """seed -> step -> the commit its record was written at ("" where the record names none), for
    every step record in the folder, seeds and steps in the suite's order."""
    written: dict[str, dict[str, str]] = {}
    seeds = sorted(Path(results_dir, "metrics").glob("seed*"), key=lambda p: int(p.name[4:]))
    for folder in seeds:
        for name, record in STEP_RECORDS.items():
            path = folder / f"{name}.json"
            if path.is_file():
                written.setdefault(folder.name[4:], {})[record.NOTEBOOK] = json.loads(
                    path.read_text()).get("commit", "")
    return written


def _every_step(run: dict, all_steps: tuple[str, ...]) -> dict[str, list[str]]:
    """The steps of a run logged before runs listed theirs: every step of its seeds."""
    return {str(seed): list(all_steps) for seed in run.get("seeds", [])}


def _without(run: dict, replaced: dict[str, list[str]]) -> dict:
    """`run` with the steps another run executed again taken from it (seeds left empty dropped)."""
    steps = {seed: [s for s in names if s not in replaced.get(seed, [])]
             for seed, names in run["steps"].items()}
    return {**run, "steps": {seed: names for seed, names in steps.items() if names}}


def _same_commit(a: str, b: str) -> bool:
    """Whether two commit names (of any length, `-dirty` or not) name the same commit."""
    a, b = a.removesuffix("-dirty"), b.removesuffix("-dirty")
    return bool(a and b) and (a.startswith(b) or b.startswith(a))


def steps_text(steps: dict[str, list[str]], all_steps: tuple[str, ...]) -> str:
    """A run's steps in words, seeds with the same steps together: `seeds 0, 1: every step`,
    `seeds 0, 2: every step but 09_methods`, `seed 1: 09_methods`."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for seed, names in steps.items():
        groups.setdefault(tuple(names), []).append(seed)
    parts = []
    for names, seeds in groups.items():
        missing = [step for step in all_steps if step not in names]
        what = ("every step" if not missing else f"every step but {' '.join(missing)}"
                if len(missing) < len(names) else " ".join(names))
        parts.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: {what}")
    return "; ".join(parts)


def earlier_runs_text(log: dict, all_steps: tuple[str, ...]) -> str:
    """The earlier runs behind the records, one clause each ('' if none)."""
    return "; ".join(
        (f"`{run.get('command', '?')}` at {run.get('git_commit', '?')} ({run.get('date', '?')})"
         if run.get("logged", True) else f"a run not logged, at {run['git_commit']}")
        + f": {steps_text(run['steps'], all_steps)}" for run in log.get("earlier", []))
