"""Tiny-ImageNet-100 seed 0's `old`, side-info model and `new` as committed and as trained again:
per step and results folder, the commit, threads, `trained_with`, the first three epochs' losses
and how many epochs' losses equal the committed ones bit for bit. From the project root (run.sh
does):
  python results/benchmarks/tiny-seed0-threads-2026-12-07/losses.py <label>=<results folder> ..."""

import sys

from fctlib.experiment.records import NewRecord, OldRecord, SideInfoRecord, load_record

folders = dict(arg.split("=", 1) for arg in sys.argv[1:])
print("| model of seed 0 | trained | commit | threads | trained_with | loss, epochs 1-3 | epochs' "
      "losses as committed |")
print("|---|---|---|---|---|---|---|")
for kind in (OldRecord, SideInfoRecord, NewRecord):
    records = {label: load_record(kind.path(folder, 0)) for label, folder in folders.items()
               if kind.path(folder, 0).exists()}
    committed = [epoch["loss"] for epoch in records["committed"].history]
    for label, record in records.items():
        losses = [epoch["loss"] for epoch in record.history]
        trained_with = "; ".join(f"{name}: threads {c.get('threads')}"
                                 for name, c in record.trained_with.items()) or "-"
        print(f"| {kind.STEP} | {label} | {record.commit[:12]} | {record.compute.get('threads')} | "
              f"{trained_with} | {', '.join(f'{loss:.6f}' for loss in losses[:3])} | "
              f"{sum(a == b for a, b in zip(losses, committed, strict=True))} of "
              f"{len(committed)} |")
