"""fctlib: the tested core of fct-suite (forward compatible training of embedding models)."""

import getpass
import os
import tempfile

__version__ = "0.1.0"

# OpenMP threads that wait sleep instead of spinning. With spinning threads, one other busy
# process on the cores made torch's work up to 10x slower (`benchmarks/bench_threads.py`:
# the figures are in README, Benchmarks). OpenMP reads this when torch loads, so it is set
# here, before any fctlib module imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# torch.compile's cache keys leave out which CPU kernels ATen may use: a graph cached under
# AVX-512 and reused with ATEN_CPU_CAPABILITY=avx2 trained to NaN losses (torch 2.14.1,
# tests/training/test_compiled.py). A steered kernel setting therefore compiles into a cache of
# its own, chosen here before torch starts its compile workers; a cache folder the user set is kept.
_STEERED = [f"{name}_{os.environ[name]}".lower() for name in
            ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
            if os.environ.get(name)]
if _STEERED and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}", "-".join(_STEERED))
