"""The same runs under the rule `fct compare` used until 0dec883 (each number alone in the 95%
prediction interval of Student's t over the committed seeds, 36 numbers of the case records),
read from git. From the project root (run.sh does):
  python results/benchmarks/compare-verdict-2026-12-06/old_rule.py"""

import importlib.util
import subprocess
import tempfile
from pathlib import Path

from fctlib.experiment.records import load_records

source = subprocess.run(["git", "show", "0dec883:fctlib/report/reproduction.py"], check=True,
                        capture_output=True, text=True).stdout
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder, "old_reproduction.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_reproduction", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

committed = load_records("results/fashion-mnist")
runs = {"seed 3 (new seed, every notebook)": "results/benchmarks/compare-verdict-2026-12-06/seed3",
        **{run: f"results/benchmarks/{run}" for run in (
            "cpu-channels-last-2026-12-06/channels-last-0-bf16-0",
            "cpu-channels-last-2026-12-06/channels-last-1-bf16-0",
            "cpu-channels-last-2026-12-06/channels-last-1-bf16-1",
            "cpu-bf16-2026-12-05/float32", "cpu-bf16-2026-12-05/bf16")}}
for name, folder in runs.items():
    table = old.reproduction_table(load_records(folder), committed)
    print(f"- {name}: {old.reproduction_verdict(table)}")
