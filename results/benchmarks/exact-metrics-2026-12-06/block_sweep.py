"""Seconds of retrieval_metrics per block size (2^19-2^22 distances), two rounds, on
bench_metrics.py's class-clustered embeddings. Usage (from the repository root, FCT_PROGRESS=0):
.venv/bin/python results/benchmarks/exact-metrics-2026-12-06/block_sweep.py > .../block_sweep.txt"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_metrics import make_embeddings  # noqa: E402

import fctlib.evaluation.retrieval as retrieval  # noqa: E402

print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of the calls per round")
for n, dim, classes, calls in [(5000, 16, 10, 3), (10000, 128, 100, 3), (50000, 128, 100, 1)]:
    query, gallery, labels = make_embeddings(n, dim, classes, 0)
    seconds = {}
    for _ in range(2):
        for power in (19, 20, 21, 22):
            retrieval._BLOCK_DISTANCES = 2**power
            best = float("inf")
            for _ in range(calls):
                start = time.perf_counter()
                retrieval.retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
                best = min(best, time.perf_counter() - start)
            seconds.setdefault(power, []).append(best)
    cells = ", ".join(f"2^{p}: {' / '.join(f'{s:.2f}' for s in v)}" for p, v in seconds.items())
    print(f"N = {n:,}, {classes} classes, dim {dim}: {cells}", flush=True)
