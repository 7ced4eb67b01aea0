#!/usr/bin/env bash
# The fashion-mnist results re-run at 6ade39d against those they replaced (as committed at 125cfd9):
# every record leaf by leaf (same_records.py) and `fct compare`. From the project root, the venv's
# bin on PATH:  bash results/benchmarks/fashion-mnist-rerun-2026-12-07/run.sh
set -eu
here=results/benchmarks/fashion-mnist-rerun-2026-12-07
before=$(mktemp -d)
git archive 125cfd9 results/fashion-mnist | tar x -C "$before"
python "$here/same_records.py" "$before/results/fashion-mnist" results/fashion-mnist \
  | sed "s#$before/#<125cfd9>/#" > "$here/same_records.md"
fct compare --preset fashion-mnist --to "$before/results/fashion-mnist" \
  --results-dir results/fashion-mnist | sed "s#$before/#<125cfd9>/#" > "$here/compare.txt"
rm -rf "$before"
