#!/usr/bin/env bash
# The GPU check on a lent machine whose calls carry at most 64 MiB, the working tree (27.4 MiB of
# tracked files) included: the Tiny-ImageNet-100 archives (75 MB), the MNIST digits of notebooks 08
# and 11 (4.7 MB) and an earlier session's compile cache travel in calls back to back, laid out
# by `python3 benchmarks/gpu_calls.py DATA_ROOT [--cache FILE ...]` into .device/calls/call<k>/
# (one stream cut into calls, a file that spans two in `<name>.part-aa, -ab, ...`), which prints
# the calls:
#   stash <folder carried: call1>  ...  stash <call N-1>
#   run <folder carried: call N> [gpu_check.py options]
# or, in place of run (or after it, on the same warm machine: the data stay decoded):
#   variance <folder carried: call N> [gpu_variance.py options]
# and, in any call before run (`gpu_calls.py --gains` puts it after call 1's stash):
#   gains [gpu_concurrency.py options]
# `run` joins every `<name>.part-aa, -ab, ...` back into <name>, again while parts of parts remain
# (a compile-cache part cut across calls; the check verifies the archives' checksums), runs
# benchmarks/gpu_check.sh (GPU_CHECK_BUDGET_S, default 430) with the GPU's
# utilisation sampled every 5 s, and leaves in $OUT: console.txt, dmon.txt, gc.tar.gz (the out
# folder without runs/: results/ is a seed as `fct reproduce` writes it; written every minute as
# well, so a call stopped at its time limit still returns what had finished; give the call a
# limit of at least GPU_CHECK_BUDGET_S + 150 s, within the session's time) and compile-cache.tar.gz,
# torch.compile's cache (TORCHINDUCTOR_CACHE_DIR: inductor's graphs, Triton's kernels) as the run
# left it (in 15 MB parts where larger: 16 MiB a file comes back; none over 40 MB, which would
# crowd out the results: 8 files and 64 MiB in all come back). A compile-cache.tar.gz (or its
# parts) among the carried files is unpacked into that cache first, so a later session's machine
# skips compiling what an earlier one compiled (on one H200 the networks' first epochs paid 110 s of
# compilation in 425 s); entries of another torch or GPU are not hit, only compiled again. The
# compile cache comes back only where it leaves the results room. Set FCT_COMPILE to compare
# compile modes (0: eager). `variance` prepares the same way and runs
# benchmarks/gpu_variance.py (GPU_VARIANCE_BUDGET_S, default 360: seed 0's old and new trained
# twice with autotuned kernels and twice with deterministic ones, each run a fresh process), its
# folder coming back as gv.tar.gz (variance/: runs.csv, summary.csv), with the compile cache.
# `gains` runs benchmarks/gpu_concurrency.py (no data needed) into $TMPDIR/fct-gains, which stays
# on the warm machine for run's `--side-by-side-gain-from $TMPDIR/fct-gains/concurrency.json`,
# and returns its concurrency.csv and .json (stopped after GPU_GAINS_LIMIT_S, default 360: the
# rows measured by then are saved and come back).
set -u
tmp="${TMPDIR:-/var/tmp}"
stash="$tmp/fct-stash" data="$tmp/fct-data" decoded="$tmp/fct-decoded"  # stashed, joined, decoded
export TORCHINDUCTOR_CACHE_DIR="$tmp/fct-compile-cache" FCT_PROGRESS=0

snapshot() {  # the work folder so far, without runs/, as $out/$archive (written whole)
  [ -d "$work" ] || return 0
  if tar czf "$out/.$archive" --exclude=./runs -C "$work" . 2>/dev/null; [ $? -le 1 ]; then
    mv -f "$out/.$archive" "$out/$archive"  # tar's 1: a file changed while it was read
  else
    rm -f "$out/.$archive"
  fi
}

snapshots() {  # a snapshot every GPU_DEVICE_SNAPSHOT_S seconds (60) until the file $1 exists
  local last=$SECONDS
  while [ ! -e "$1" ]; do
    sleep 1
    if [ $((SECONDS - last)) -ge "${GPU_DEVICE_SNAPSHOT_S:-60}" ]; then
      snapshot
      last=$SECONDS
    fi
  done
}

prepare() {  # the stashed and carried ($1) data joined in $data; the compile cache restored
  mkdir -p "$data" "$out" "$TORCHINDUCTOR_CACHE_DIR"
  cp -f "$stash"/* "$data"/ 2>/dev/null || { echo "no stash: call 1 did not run on this machine"; exit 3; }
  cp -f "$1"/* "$data"/
  while compgen -G "$data/*.part-aa" > /dev/null; do  # again: a part may itself be in parts
    for first in "$data"/*.part-aa; do
      [ -e "$first" ] || continue
      whole="${first%.part-aa}"
      cat "$whole".part-* > "$whole" && rm -f "$whole".part-* || { echo "cannot join $whole"; exit 3; }
    done
  done
  if [ -e "$data/compile-cache.tar.gz" ]; then
    tar xzf "$data/compile-cache.tar.gz" -C "$TORCHINDUCTOR_CACHE_DIR" && rm "$data/compile-cache.tar.gz"
    echo "compile cache restored: $(find "$TORCHINDUCTOR_CACHE_DIR" -type f | wc -l) files"
  fi
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    nvidia-smi dmon -s u -d 5 > "$out/dmon.txt" 2>&1 &
  fi
}

watched() {  # run the command "$@" into console.txt with snapshots; then the last snapshot
  local stop status
  stop="$(mktemp -u)"
  snapshots "$stop" &
  local snapper=$!
  "$@" > "$out/console.txt" 2>&1
  status=$?
  touch "$stop" && wait "$snapper"; rm -f "$stop"
  snapshot
  return "$status"
}

in_parts() {  # $out/$1 cut into 15 MB parts where larger (16 MiB a file comes back)
  if [ "$(stat -c %s "$out/$1")" -gt $((15 << 20)) ]; then
    (cd "$out" && split -b 15M "$1" "$1.part-" && rm "$1")
  fi
}

return_cache() {  # torch.compile's cache into $out, unless it would crowd out what is there
  local room size
  room=$(((60 << 20) - $(du -cb "$out" | tail -1 | cut -f1)))  # 8 files, 64 MiB come back
  [ "$room" -gt $((40 << 20)) ] && room=$((40 << 20))
  (cd "$TORCHINDUCTOR_CACHE_DIR" && tar czf "$out/compile-cache.tar.gz" .)
  size="$(stat -c %s "$out/compile-cache.tar.gz")"
  if [ "$size" -gt "$room" ]; then  # the results go first
    rm "$out/compile-cache.tar.gz"
    echo "compile cache of $((size >> 20)) MiB not returned: too large beside the results"
  else
    in_parts compile-cache.tar.gz
  fi
  ls -l "$out"/compile-cache.tar.gz* 2>/dev/null
}

case "${1:-}" in
  stash)
    mkdir -p "$stash" && cp -f "$2"/* "$stash"/ && ls -l "$stash"
    ;;
  run)
    out="${OUT:?set OUT, the folder whose files come back}"
    work="$tmp/fct-gpu-check" archive=gc.tar.gz
    prepare "$2"
    export GPU_CHECK_BUDGET_S="${GPU_CHECK_BUDGET_S:-430}"
    watched bash "$(dirname "$0")/gpu_check.sh" "$data" "$work" --cache-dir "$decoded" "${@:3}"
    status=$?
    return_cache
    grep "\[gpu_check\]" "$out/console.txt"
    echo "gpu_device: exit $status"
    exit "$status"
    ;;
  variance)
    out="${OUT:?set OUT, the folder whose files come back}"
    work="$tmp/fct-gpu-variance" archive=gv.tar.gz
    prepare "$2"
    budget="${GPU_VARIANCE_BUDGET_S:-360}"
    export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)" PYTHONUNBUFFERED=1
    watched timeout --signal=INT --kill-after=30 "$((budget + 60))" "${PYTHON:-python3}" \
      "$(dirname "$0")/gpu_variance.py" "$data" "$work" --cache-dir "$decoded" \
      --budget-s "$budget" "${@:3}"
    status=$?
    return_cache
    grep "\[gpu_variance\]" "$out/console.txt"
    echo "gpu_device: exit $status"
    exit "$status"
    ;;
  gains)
    out="${OUT:?set OUT, the folder whose files come back}"
    mkdir -p "$tmp/fct-gains" "$out"
    export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)" PYTHONUNBUFFERED=1
    # TERM, not INT: the rows are saved as each is measured, so Ctrl-C's KeyboardInterrupt saves
    # nothing more, and Python can lose it: mpmath (sympy, torch._dynamo, torchvision) imports
    # gmpy2 under a bare `except:` (a stop landing there runs on to the SIGKILL: likely one CI
    # run's 137 with a 0.5 s limit)
    timeout --kill-after=30 "${GPU_GAINS_LIMIT_S:-360}" "${PYTHON:-python3}" \
      "$(dirname "$0")/gpu_concurrency.py" "$tmp/fct-gains" "${@:2}"
    status=$?
    cp -f "$tmp/fct-gains"/concurrency.* "$out"/ 2>/dev/null
    echo "gpu_device: gains in $tmp/fct-gains/concurrency.json; exit $status"
    exit "$status"
    ;;
  *)
    echo "usage: $0 stash DIR | run DIR [gpu_check.py options] | variance DIR [gpu_variance.py options] | gains [gpu_concurrency.py options]" >&2
    exit 2
    ;;
esac
