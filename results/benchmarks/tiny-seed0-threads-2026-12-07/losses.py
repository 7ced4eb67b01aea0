"""Tiny-ImageNet-100 seed 0's `old` as committed and as trained again: each results folder's
commit, threads, `trained_with`, first three epochs' losses, whether every epoch's loss equals the
committed one bit for bit, and old/old top-1 (l2). From the project root (run.sh does):
  python results/benchmarks/tiny-seed0-threads-2026-12-07/losses.py <label>=<results folder> ..."""

import sys

from fctlib.experiment.records import OldRecord, load_record

rows = [arg.split("=", 1) for arg in sys.argv[1:]]
records = {label: load_record(OldRecord.path(folder, 0)) for label, folder in rows}
committed = [epoch["loss"] for epoch in records["committed"].history]
print("| old of seed 0 | commit | threads | trained_with | loss, epochs 1-3 | every epoch's loss "
      "as committed | old/old top-1 (l2) |")
print("|---|---|---|---|---|---|---|")
for label, record in records.items():
    losses = [epoch["loss"] for epoch in record.history]
    trained_with = "; ".join(f"{name}: threads {c.get('threads')}"
                             for name, c in record.trained_with.items()) or "-"
    print(f"| {label} | {record.commit[:12]} | {record.compute.get('threads')} | {trained_with} | "
          f"{', '.join(f'{loss:.6f}' for loss in losses[:3])} | "
          f"{sum(a == b for a, b in zip(losses, committed, strict=True))} of {len(committed)} | "
          f"{100 * record.by_distance['l2']['old/old']['all']['top1']:.2f} |")
