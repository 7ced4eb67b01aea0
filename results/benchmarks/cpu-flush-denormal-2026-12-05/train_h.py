"""Train the named artifacts of one preset and seed into a runs folder, printing each one's key
and wall time (a probe of FCT_CPU_FLUSH_DENORMAL; the artifacts' own history.json has the
per-epoch rates)."""
import sys
import time

from fctlib.suite.run import Run

preset, seed, runs_dir, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
run = Run(preset, seed, runs_dir=runs_dir, results_dir=f"{runs_dir}/results")
for name in names:
    print(name, "key", run.store.key(run.artifact(name)), flush=True)
    start = time.perf_counter()
    run.trained(name)
    print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
