"""fctlib: the tested core of fct-suite (forward compatible training of embedding models)."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait sleep instead of spinning. With spinning threads, one other busy
# process on the cores made torch's work up to 10x slower (`benchmarks/bench_threads.py`:
# the figures are in README, Benchmarks). OpenMP reads this when torch loads, so it is set
# here, before any fctlib module imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
