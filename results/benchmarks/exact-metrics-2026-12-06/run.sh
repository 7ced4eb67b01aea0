#!/bin/bash
# The exact metrics before (6c3b863) and after (0f191ae) the per-row candidate sort, alternating
# round by round on one machine: benchmarks/bench_metrics.py of each commit, each importing its own
# fctlib (PYTHONPATH), at the default preset's shape (5,000 test items, 10 classes, 16-d) and at
# make bench's (100 classes, 128-d; 10,000 and 50,000 items).
# Usage (from the repository root): bash results/benchmarks/exact-metrics-2026-12-06/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(pwd)/.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for commit in 6c3b863 0f191ae; do
  mkdir -p "$WORK/$commit" && git archive "$commit" | tar -x -C "$WORK/$commit"
done
export FCT_PROGRESS=0
for round in 1 2 3; do
  for commit in 6c3b863 0f191ae; do
    cd "$WORK/$commit"
    PYTHONPATH=$PWD "$PY" benchmarks/bench_metrics.py --sizes 5000 --dim 16 --classes 10 \
      --repeats 3 --json "$HERE/$commit-fashion-shape-$round.json"
    PYTHONPATH=$PWD "$PY" benchmarks/bench_metrics.py --sizes 10000 50000 \
      --json "$HERE/$commit-bench-shape-$round.json"
  done
done
