"""Count denormal float32 values (nonzero, below 1.2e-38) in each checkpoint of a seed folder:
per part of the checkpoint (model and, where the checkpoint keeps it, optimiser state), as
(denormal values, float32 values). Usage: python count_denormals.py <runs>/<preset>/seed<k>"""
import sys
from pathlib import Path

import torch

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def count(obj) -> tuple[int, int]:
    """(denormal, all) float32 values in a tensor or a nest of dicts, lists and tuples of them."""
    if isinstance(obj, torch.Tensor):
        if obj.dtype != torch.float32:
            return 0, 0
        size = obj.abs()
        return int(((size > 0) & (size < SMALLEST_NORMAL)).sum()), obj.numel()
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
    counts = [count(item) for item in items]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


for path in sorted(Path(sys.argv[1]).glob("*/model.pt")):
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    parts = {key: count(value) for key, value in checkpoint.items()}
    print(path.parent.name, {key: c for key, c in parts.items() if c[1]})
