#!/usr/bin/env bash
# Which arithmetic trained the committed tiny-imagenet-100 seed 0's models? Its records (commit
# fa59ae2) say 1 thread, the process that loaded them; the README said a first attempt at 18a263a
# trained them. Trained again, each from an empty runs folder: `old` at 18a263a with 1 thread
# (notebooks 00-01), `old`, the side-info model and `new` here with 1 thread and with 2 (00-03),
# then losses.py. From the project root, the venv's bin on PATH and the data where
# FCT_TINY_IMAGENET_ROOT says (2-core AMD EPYC: 31 minutes):
#   bash results/benchmarks/tiny-seed0-threads-2026-12-07/run.sh
set -eu
here=results/benchmarks/tiny-seed0-threads-2026-12-07
out=$(mktemp -d)
old=(--preset tiny-imagenet-100 --seeds 0 --no-report --only 00_data 01_train_old)
three=("${old[@]}" 02_side_info 03_train_new)
git worktree add -q "$out/code-18a263a" 18a263a
(cd "$out/code-18a263a" && OMP_NUM_THREADS=1 PYTHONPATH="$PWD" python -m fctlib.suite.cli \
  reproduce "${old[@]}" --runs-dir "$out/runs-a" --results-dir "$out/18a263a-1" > "$out/a.log" 2>&1) &
OMP_NUM_THREADS=1 fct reproduce "${three[@]}" --runs-dir "$out/runs-b" --results-dir "$out/here-1" \
  > "$out/b.log" 2>&1 &
wait
OMP_NUM_THREADS=2 fct reproduce "${three[@]}" --runs-dir "$out/runs-c" --results-dir "$out/here-2" \
  > "$out/c.log" 2>&1
# the 2-thread models loaded by a 1-thread process, as the committed records were made
OMP_NUM_THREADS=1 fct reproduce "${three[@]}" --runs-dir "$out/runs-c" --results-dir "$out/loaded" \
  > "$out/d.log" 2>&1
python "$here/losses.py" committed=results/tiny-imagenet-100 "18a263a, 1 thread=$out/18a263a-1" \
  "today, 1 thread=$out/here-1" "today, 2 threads=$out/here-2" \
  "today, 2 threads' models loaded by 1 thread=$out/loaded" > "$here/losses.md"
git worktree remove --force "$out/code-18a263a"
rm -rf "$out"
