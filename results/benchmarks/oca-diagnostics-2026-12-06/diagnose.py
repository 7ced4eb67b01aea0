"""OCA's prototype diagnostics (`fctlib.methods.oca.prototype_diagnostics`, as notebook 09 now
records them) of runs whose models are cached, beside OCA's cosine rows. Only reads: a run
whose OCA models are not finished under the current keys is named and skipped, never trained.
The table goes to stdout, the store's log to stderr. From the project root:
  python results/benchmarks/oca-diagnostics-2026-12-06/diagnose.py PRESET:SEED:RUNS_DIR ..."""

import contextlib
import json
import sys

from fctlib.methods import oca
from fctlib.suite.run import Run

COLUMNS = ["old_prototype_train", "old_prototype_test", "slice_prototype_test",
           "slice_prototype_test_old_classes", "slice_prototype_test_new_classes",
           "oracle_prototype_top1"]
print("| run | oca-old/oca-old top-1 | oca/oca-old top-1 | " + " | ".join(COLUMNS) + " |")
print("|---" * (3 + len(COLUMNS)) + "|")
for argument in sys.argv[1:]:
    preset, seed, runs_dir = argument.split(":", 2)
    run = Run(preset, int(seed), runs_dir=runs_dir, results_dir="/tmp/oca-diagnostics-unused")
    missing = [name for name in ("oca-old", "oca")
               if not run.store.finished(run.artifact(name))]
    if missing:
        print(f"| {preset} seed {seed} | not finished under this commit's keys: {missing} |")
        continue
    with contextlib.redirect_stdout(sys.stderr):  # the store's "loaded from" lines
        diagnostics = oca.oca_diagnostics(run)
        cases = oca.oca_cases(run).cases
        top1 = {case: run.evaluate(*cases[case], distance="cosine")["all"]["top1"]
                for case in ("oca-old/oca-old", "oca/oca-old")}
    cells = [f"{100 * top1['oca-old/oca-old']:.2f}", f"{100 * top1['oca/oca-old']:.2f}",
             *(f"{100 * diagnostics[c]:.2f}" for c in COLUMNS)]
    saved = json.loads((run.store.folder(run.artifact("oca")) / "artifact.json").read_text())
    print(f"| {preset} seed {seed} (OCA trained at {saved['commit'][:7]}) | "
          + " | ".join(cells) + " |", flush=True)
