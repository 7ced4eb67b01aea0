#!/bin/bash
# fashion-mnist seed 0, every notebook, float32 channels-first against bfloat16 + channels-last
# (and channels-last alone for 00-05), the configurations alternating notebook by notebook so
# that the VM's speed drift reaches all alike. Kernels import the clone's fctlib (PYTHONPATH).
set -e
cd /work/scratch/clclone
export PYTHONPATH=/work/scratch/clclone FCT_PROGRESS=0
PY=/work/main/.venv/bin/python
date
$PY benchmarks/bench_memory_format.py > bench_memory_format.json
$PY benchmarks/bench_decode.py > bench_decode.json
date
echo "step,config,wall_s" > seed-walls.csv
for nb in notebooks/[01]*.ipynb; do
  step=$(basename $nb .ipynb)
  configs=("0 0" "1 1")
  case $step in 0[0-5]_*) configs=("0 0" "1 0" "1 1");; esac
  for cfg in "${configs[@]}"; do
    set -- $cfg
    tag=channels-last-$1-bf16-$2
    start=$(date +%s.%N)
    FCT_CPU_CHANNELS_LAST=$1 FCT_CPU_BF16=$2 $PY -m fctlib.suite.cli reproduce \
      --preset fashion-mnist --seeds 0 --only $step --no-report --runs-dir runs-$tag \
      --results-dir results-$tag >> log-$tag.txt 2>&1
    echo "$step,$tag,$(echo "$(date +%s.%N) - $start" | bc)" >> seed-walls.csv
  done
done
for tag in channels-last-0-bf16-0 channels-last-1-bf16-0 channels-last-1-bf16-1; do
  $PY -m fctlib.suite.cli compare --preset fashion-mnist --results-dir results-$tag > compare-$tag.txt 2>&1 || true
done
date
