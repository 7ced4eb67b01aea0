"""The default preset's wall time per seed from scratch: every notebook of fashion-mnist seed 0
through papermill, into an empty runs folder (nothing cached), without the report. Prints one JSON
line: seconds per notebook and in total. Usage: .venv/bin/python benchmarks/bench_default_preset.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from fctlib.suite.runner import run_suite


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        results = run_suite("fashion-mnist", [0], results_dir=Path(tmp, "results"),
                            runs_dir=Path(tmp, "runs"), report=False, log=lambda message: None)
        total = time.perf_counter() - started
        notebooks = json.loads((results / "notebooks" / "seed0" / "timings.json").read_text())
    print(json.dumps({"seconds_per_seed": round(total, 1), "notebooks": notebooks,
                      "source": "fashion-mnist seed 0 from an empty runs folder"}))


if __name__ == "__main__":
    main()
