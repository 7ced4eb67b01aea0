"""Whether two trainings of one artifact agree bit for bit: every tensor of the two trained
models (their state dicts) and every epoch's loss; where values differ, how many and by how much
at most."""
import json
import sys
from pathlib import Path

import torch

a, b = (torch.load(f"{folder}/model.pt", map_location="cpu", weights_only=False)["model"]
        for folder in sys.argv[1:3])
assert a.keys() == b.keys(), "the models hold different tensors"
values = sum(t.numel() for t in a.values())
differ, largest = 0, 0.0
for k in a:
    d = a[k] != b[k]
    differ += int(d.sum())
    if bool(d.any()):
        largest = max(largest, float((a[k].double() - b[k].double())[d].abs().max()))
losses = [[e["loss"] for e in json.loads(Path(folder, "history.json").read_text())]
          for folder in sys.argv[1:3]]
print(f"{len(a)} tensors, {values:,} values: "
      + (f"{differ:,} differ, by at most {largest:.3g}" if differ else "identical"))
print(f"{len(losses[0])} epoch losses: {'identical' if losses[0] == losses[1] else 'different'} "
      f"(last {losses[0][-1]!r} / {losses[1][-1]!r})")
