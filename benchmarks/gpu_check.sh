#!/usr/bin/env bash
# The GPU check in one command: benchmarks/gpu_check.sh DATA_ROOT OUT [gpu_check.py options]
# DATA_ROOT holds the Tiny-ImageNet-100 archives (train-part1/2.tar.gz, val.tar.gz, SHA256SUMS);
# tables, figures.json, records and runs go to OUT. Needs python3 with torch, torchvision, numpy,
# pandas, PyYAML, tqdm and Pillow (no faiss, papermill, Dask or matplotlib). A hard stop at the
# budget plus a minute (GPU_CHECK_BUDGET_S, default 480) leaves what finished in OUT: SIGINT, so the
# in-process notebook saves what ran; one that Python loses (a library's bare `except:`) falls to
# the SIGKILL 30 s later.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DATA_ROOT OUT [--tiny] [--seed K] [--budget-s S]" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
budget="${GPU_CHECK_BUDGET_S:-480}"
python="${PYTHON:-python3}"
mkdir -p "$2"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
status=0
timeout --signal=INT --kill-after=30 "$((budget + 60))" \
  "$python" "$here/gpu_check.py" "$1" "$2" --budget-s "$budget" "${@:3}" 2>&1 \
  | tee "$2/gpu_check.log" || status=$?
echo "gpu_check: exit $status; tables in $2/tables, figures in $2/figures.json"
exit "$status"
