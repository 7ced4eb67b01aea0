#!/usr/bin/env bash
# `fct compare` once fashion-mnist holds 4 committed seeds (0-3): every saved faithful run judged
# against them, each committed seed against the others (leave_one_out.py of
# ../compare-verdict-2026-12-06, which judged the same runs against 3 seeds), and the Xeon's seed 3
# against the committed seed 3 (same_seed.py); the verdict simulated with 4 committed seeds
# (simulate.py of ../compare-verdict-2026-12-06). From the project root, the venv's bin on PATH:
#   bash results/benchmarks/compare-four-seeds-2026-12-06/run.sh
set -u
here=results/benchmarks/compare-four-seeds-2026-12-06
runs=(
  "compare-verdict-2026-12-06/seed3"                      # Xeon, seed 3, every notebook
  "cpu-channels-last-2026-12-06/channels-last-0-bf16-0"   # Xeon, float32, every notebook
  "cpu-channels-last-2026-12-06/channels-last-1-bf16-0"   # Xeon, channels-last, 00-05
  "cpu-channels-last-2026-12-06/channels-last-1-bf16-1"   # Xeon, channels-last + bf16, all
  "cpu-bf16-2026-12-05/float32"                           # EPYC, float32, 00-03 and 05
  "cpu-bf16-2026-12-05/bf16"                              # EPYC, bf16, 00-03 and 05
)
for run in "${runs[@]}"; do
  name=$(echo "$run" | tr / _)
  fct compare --preset fashion-mnist --to results/fashion-mnist --results-dir "results/benchmarks/$run" \
    > "$here/compare-$name.txt"
  echo "$run: exit $? | $(tail -1 "$here/compare-$name.txt")"
done
python results/benchmarks/compare-verdict-2026-12-06/leave_one_out.py > "$here/leave_one_out.md"
python "$here/same_seed.py" > "$here/same_seed.md"
python results/benchmarks/compare-verdict-2026-12-06/simulate.py --seeds 4 > "$here/simulate.md"
