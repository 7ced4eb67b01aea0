#!/usr/bin/env bash
# `fct compare` once it judges notebook 07's areas under the backfilling curves and 10's multi-step
# AM: every saved faithful run against the committed fashion-mnist seeds, the records as committed
# at 125cfd9 (whose 07 and 10 parts the Xeon made) against today's, each committed seed against
# its preset's others, how far the Xeon moved the new numbers (moved.py), and the verdict simulated
# with as many numbers as a whole seed now has. From the project root, the venv's bin on PATH:
#   bash results/benchmarks/compare-curves-2026-12-07/run.sh
set -u
here=results/benchmarks/compare-curves-2026-12-07
# the runs ../compare-four-seeds-2026-12-06 judged, named by its outputs (compare-<folder>_<run>.txt)
for judged in results/benchmarks/compare-four-seeds-2026-12-06/compare-*.txt; do
  name=$(basename "$judged" .txt)
  name=${name#compare-}
  run=${name/_//}
  fct compare --preset fashion-mnist --to results/fashion-mnist --results-dir "results/benchmarks/$run" \
    > "$here/compare-$name.txt"
  echo "$run: exit $? | $(tail -1 "$here/compare-$name.txt")"
done
before=$(mktemp -d)
git archive 125cfd9 results/fashion-mnist | tar x -C "$before"
fct compare --preset fashion-mnist --to results/fashion-mnist --results-dir "$before/results/fashion-mnist" \
  | sed "s#$before/#<125cfd9>/#" > "$here/compare-125cfd9.txt"
status=${PIPESTATUS[0]}
echo "125cfd9: exit $status | $(tail -1 "$here/compare-125cfd9.txt")"
python "$here/moved.py" "$before/results/fashion-mnist" > "$here/moved.md"
rm -rf "$before"
python results/benchmarks/compare-verdict-2026-12-06/leave_one_out.py > "$here/leave_one_out.md"
python results/benchmarks/compare-verdict-2026-12-06/simulate.py --seeds 4 --numbers 290 \
  > "$here/simulate.md"
