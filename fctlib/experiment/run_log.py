"""Which runs made a results folder: `results/<preset>/last_run.json` holds the provenance of the
last `fct reproduce` that executed a step (its command, commit, machine, wall time and the steps
it executed, by seed) and, under `earlier`, each run before it whose records it did not all
replace, with the steps still its own. A folder made by one run names one; a resumed run, an
`--only` run or a second seed added later name every run behind the records. Updated after every
step, so an interrupted run is named with the steps it finished (torch-free)."""

from __future__ import annotations

from pathlib import Path

from fctlib.experiment.provenance import portable_command
from fctlib.io import load_json_if_exists, save_json

RUN_LOG = "last_run.json"


class RunLog:
    """The run log of a results folder as a starting run finds it, written again after each step
    the run executes (a run that executes none leaves it as it was)."""

    def __init__(self, results_dir: str | Path, provenance: dict, all_steps: tuple[str, ...]):
        self.path = Path(results_dir) / RUN_LOG
        previous = load_json_if_exists(self.path) or {}
        earlier = [*previous.pop("earlier", []), previous] if previous else []
        self.earlier = [{**run, "steps": run.get("steps") or _every_step(run, all_steps)}
                        for run in earlier]
        self.run = {**provenance, "steps": {}}

    def step_done(self, seed: int, step: str, wall_seconds: float) -> None:
        """Count `step` of `seed` as this run's (no earlier run's any more) and save the log."""
        self.run["steps"].setdefault(str(seed), []).append(step)
        self.run["wall_seconds"] = round(wall_seconds, 1)
        kept = [run for run in (_without(run, self.run["steps"]) for run in self.earlier)
                if run["steps"]]
        save_json({**self.run, "earlier": kept} if kept else self.run, self.path)


def _every_step(run: dict, all_steps: tuple[str, ...]) -> dict[str, list[str]]:
    """The steps of a run logged before runs listed theirs: every step of its seeds."""
    return {str(seed): list(all_steps) for seed in run.get("seeds", [])}


def _without(run: dict, replaced: dict[str, list[str]]) -> dict:
    """`run` with the steps another run executed again taken from it (seeds left empty dropped)."""
    steps = {seed: [s for s in names if s not in replaced.get(seed, [])]
             for seed, names in run["steps"].items()}
    return {**run, "steps": {seed: names for seed, names in steps.items() if names}}


def load_run_log(results_dir: str | Path) -> dict:
    """The run log (`{}` if absent), every command without machine paths (runs logged before
    commands were portable)."""
    log = load_json_if_exists(Path(results_dir) / RUN_LOG) or {}
    for run in [log, *log.get("earlier", [])]:
        if "command" in run:
            run["command"] = portable_command(run["command"])
    return log


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
    return "; ".join(f"`{run.get('command', '?')}` at {run.get('git_commit', '?')} "
                     f"({run.get('date', '?')}): {steps_text(run['steps'], all_steps)}"
                     for run in log.get("earlier", []))
