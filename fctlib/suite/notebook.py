"""The first code cell of every step notebook: the run of its parameters, announced with the
preset, the seed, the device, where its artifacts go and what the step cost when measured."""

from __future__ import annotations

from pathlib import Path

from fctlib.suite.cost import measured_step_cost
from fctlib.suite.run import Run


def start(step: str, preset: str, seed: int, overrides: dict | str | None = None,
          runs_dir: str | Path | None = None, results_dir: str | Path | None = None) -> Run:
    """The notebook `step`'s Run of the parameters cell's values, after printing the header line
    and the step's measured cost."""
    run = Run(preset, seed, overrides=overrides, runs_dir=runs_dir, results_dir=results_dir)
    print(f"preset {run.preset.name} (seed {seed}) on {run.device}; step folders under {run.root}")
    print(measured_step_cost(run.preset.name, step))
    return run
