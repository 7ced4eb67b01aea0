#!/usr/bin/env bash
# Judge every saved faithful run of fashion-mnist with `fct compare` at this commit, then the
# committed seeds against each other and the simulations. From the project root:
#   bash results/benchmarks/compare-verdict-2026-12-06/run.sh
set -u
here=results/benchmarks/compare-verdict-2026-12-06
runs=(
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
# seed 3: a new seed of the default preset, every notebook (records in seed3/)
fct compare --preset fashion-mnist --to results/fashion-mnist --results-dir "$here/seed3" > "$here/compare-seed3.txt"
echo "seed3: exit $? | $(tail -1 "$here/compare-seed3.txt")"
python "$here/old_rule.py" > "$here/old_rule.md"
python "$here/leave_one_out.py" > "$here/leave_one_out.md"
python "$here/simulate.py" > "$here/simulate.md"
