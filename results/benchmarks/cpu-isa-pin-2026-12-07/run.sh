#!/usr/bin/env bash
# Does pinning the CPU kernels to AVX2 make machines compute alike? The default preset's `old`
# (notebooks 00-01, seed 0, 2 threads) trained with this machine's own kernels and with ATen,
# oneDNN and MKL pinned to AVX2, each from an empty runs folder; prints the CPU, the first
# epoch's loss, old/old (L2) and the weights digest, to set beside the README's rows of the
# AVX-512 machines. From the project root, the venv's bin on PATH (about 2 minutes):
#   bash results/benchmarks/cpu-isa-pin-2026-12-07/run.sh > results/benchmarks/cpu-isa-pin-2026-12-07/old.md
set -eu
out=$(mktemp -d)
train() {  # train <label> [VARIABLE=value...]
  label=$1
  shift
  env "$@" OMP_NUM_THREADS=2 FCT_PROGRESS=0 fct reproduce --preset fashion-mnist --seeds 0 \
    --no-report --only 00_data 01_train_old --runs-dir "$out/runs-$label" \
    --results-dir "$out/$label" > "$out/log-$label" 2>&1
}
train own
train pinned ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
grep -o -m1 "avx512[a-z_]*\|avx2" /proc/cpuinfo > "$out/isa" || true
python - "$out" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
isa = sorted(set(Path(out / "isa").read_text().split()))
print(f"The CPU's AVX flags: {', '.join(isa) or 'none'}\n")
print("| kernels | cpu_capability | kernel_env | first-epoch loss | old/old L2 top-1 / mAP | weights |")
print("|---|---|---|---|---|---|")
for folder, name in ((out / "own", "the machine's own"), (out / "pinned", "pinned to AVX2")):
    record = json.loads((folder / "metrics/seed0/old.json").read_text())
    compute, scores = record["compute"], record["cases"]["old/old"]["all"]
    print(f"| {name} | {compute['cpu_capability']} | {compute.get('kernel_env', '-')} | "
          f"{record['history'][0]['loss']:.7f} | {100 * scores['top1']:.2f} / "
          f"{100 * scores['mAP']:.2f} | {record['weights']['old']} |")
PY
rm -rf "$out"
