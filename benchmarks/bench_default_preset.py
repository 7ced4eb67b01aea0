"""The default preset's wall time per seed from scratch, and what it is spent on.

Every notebook of fashion-mnist seed 0 runs through papermill into an empty runs folder (nothing
cached), without the report. Each notebook's time is then split into
  training: the seconds in the training histories of the artifacts it trained (an artifact belongs
    to the notebook whose executed copy was written first after it), with the items they processed;
  rest: everything else (kernel start, imports, data, embedding, evaluation, figures).
A second pass runs every notebook again on the same runs folder, where every artifact and embedding
is cached: its wall time is what a notebook costs without training or embedding.
Prints one JSON line. Usage: .venv/bin/python benchmarks/bench_default_preset.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from fctlib.paths import STEPS
from fctlib.suite.runner import run_suite

PRESET = "fashion-mnist"


def run_seed(results: Path, runs: Path, *, rerun: bool = False) -> tuple[float, dict]:
    """Run every notebook of seed 0 (again, with `rerun`: the runner skips a notebook already
    done into `results`); its total wall seconds and seconds per notebook."""
    started = time.perf_counter()
    run_suite(PRESET, [0], results_dir=results, runs_dir=runs, report=False, rerun=rerun,
              log=lambda message: None)
    total = time.perf_counter() - started
    return total, json.loads((results / "notebooks" / "seed0" / "timings.json").read_text())


def training_by_notebook(results: Path, runs: Path) -> dict:
    """Per notebook: the artifacts it trained, their training seconds and items processed."""
    finished = [(path.stat().st_mtime, step) for step in STEPS
                if (path := results / "notebooks" / "seed0" / f"{step}.ipynb").is_file()]
    finished.sort()
    out = {step: {"artifacts": 0, "seconds": 0.0, "items": 0.0} for _, step in finished}
    for history_file in runs.rglob("history.json"):
        written = history_file.stat().st_mtime
        step = next((s for end, s in finished if end >= written), None)
        history = json.loads(history_file.read_text())
        if step is None or not isinstance(history, list):
            continue
        out[step]["artifacts"] += 1
        out[step]["seconds"] += sum(epoch["seconds"] for epoch in history)
        out[step]["items"] += sum(epoch["seconds"] * epoch["items_per_s"] for epoch in history)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results, runs = Path(tmp, "results"), Path(tmp, "runs")
        total, scratch = run_seed(results, runs)
        training = training_by_notebook(results, runs)
        cached_total, cached = run_seed(results, runs, rerun=True)
    accounting = {step: {"wall": scratch[step],
                        "training": round(training[step]["seconds"], 1),
                        "rest": round(scratch[step] - training[step]["seconds"], 1),
                        "cached_rerun": cached[step],
                        "artifacts_trained": training[step]["artifacts"],
                        "items_trained": round(training[step]["items"])}
                 for step in scratch}
    print(json.dumps({
        "seconds_per_seed": round(total, 1),
        "training_seconds": round(sum(n["training"] for n in accounting.values()), 1),
        "cached_rerun_seconds": round(cached_total, 1),
        "notebooks": scratch,
        "accounting": accounting,
        "source": f"{PRESET} seed 0 from an empty runs folder, then again with everything cached",
    }))


if __name__ == "__main__":
    main()
