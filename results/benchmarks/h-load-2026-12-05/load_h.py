"""Seconds to load finished h's (FCT's, FastFill's) from a runs folder in a new process: what
every notebook after the one that trained them pays."""
import sys
import time

from fctlib.methods.fastfill import fastfill_artifact
from fctlib.suite.run import Run

preset, seed, runs_dir, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
run = Run(preset, seed, runs_dir=runs_dir)
for name in names:
    artifact = (fastfill_artifact(run, int(name.split(":")[1])) if name.startswith("fastfill:")
                else run.artifact(name))
    start = time.perf_counter()
    run.trained(artifact)
    print(f"{name}: loaded in {time.perf_counter() - start:.1f} s", flush=True)
