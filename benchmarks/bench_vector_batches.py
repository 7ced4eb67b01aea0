"""Fitting h on stored vectors, in items per second of `train`: tensor batches (a TensorDataset,
moved to the device once and indexed batch by batch) against the path they replaced (the same
vectors collated item by item by a DataLoader), for the fashion-mnist preset's and the reference h,
and for a tiny h (one layer per branch, no hidden mixer layer) whose figure is mostly the loop's own
cost of serving batches. Both paths train on the same batches; each figure is the best of
`--repeats` fits, counting the epochs after the first. Capacity: Adam steps of the same h on one
batch already on the device, the rate no data path can beat, so capacity / dataloader bounds the
speedup any data path can give on this machine. Prints one JSON line.
Usage: .venv/bin/python benchmarks/bench_vector_batches.py [--items 9000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_data_path import capacity
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from fctlib.experiment.config import load_preset
from fctlib.models.transformation import Transformation
from fctlib.training.config import TrainConfig
from fctlib.training.loop import train
from fctlib.training.runtime import default_device


class ItemByItem(Dataset):
    """A TensorDataset's items under another type: `train` serves them through its DataLoader,
    collated one by one, as it served every TensorDataset before the tensor path."""

    def __init__(self, tensors: tuple[torch.Tensor, ...]):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


def h_settings() -> dict:
    """The sizes of h: (dim of old/side/new, branch widths, mixer widths, batch size)."""
    preset = load_preset("fashion-mnist").transformation
    return {"preset": (16, tuple(preset.branch_widths), tuple(preset.mixer_widths),
                       preset.training.batch_size),
            "reference": (128, (256, 256), (2048, 2048), 1024),
            "tiny": (16, (16,), (), preset.training.batch_size)}


def fit_items_per_s(data: Dataset, dim: int, branches, mixer, cfg: TrainConfig) -> float:
    """Items per second of fitting a fresh h on `data` by MSE, over the epochs after the first."""
    torch.manual_seed(0)
    h = Transformation(dim, dim, dim, branches, mixer)
    history = train(h, data, lambda model, batch: F.mse_loss(model(batch[0], batch[1]), batch[2]),
                    cfg, seed=0, device=default_device(), desc="h")[1:]
    seconds = sum(e["seconds"] for e in history)
    return sum(e["items_per_s"] * e["seconds"] for e in history) / seconds


def capacity_items_per_s(tensors, dim: int, branches, mixer, cfg: TrainConfig,
                         seconds: float = 3.0) -> float:
    """Items per second of fitting steps on one device-resident batch, stepped for `seconds`."""
    torch.manual_seed(0)
    device = default_device()
    old, side, new = (t[:cfg.batch_size].to(device) for t in tensors)
    return capacity(Transformation(dim, dim, dim, branches, mixer),
                    lambda h: F.mse_loss(h(old, side), new), cfg, cfg.batch_size, device, seconds)


def compare(items: int, epochs: int, repeats: int) -> dict:
    """Both paths for each size of h, alternating so that machine load hits them alike."""
    results = {}
    for name, (dim, branches, mixer, batch) in h_settings().items():
        tensors = tuple(torch.randn(items, dim, generator=torch.Generator().manual_seed(i))
                        for i in range(3))
        cfg = TrainConfig(epochs=epochs, batch_size=batch, optimizer="adam", lr=1e-3,
                          warmup_epochs=0)
        rates = {"dataloader": [], "tensor_batches": [], "capacity": []}
        for _ in range(repeats):
            for path, data in (("dataloader", ItemByItem(tensors)),
                               ("tensor_batches", TensorDataset(*tensors))):
                rates[path].append(fit_items_per_s(data, dim, branches, mixer, cfg))
            rates["capacity"].append(capacity_items_per_s(tensors, dim, branches, mixer, cfg))
        best = {path: max(values) for path, values in rates.items()}
        results[name] = {"dim": dim, "branch_widths": branches, "mixer_widths": mixer,
                         "batch_size": batch, **best,
                         "speedup": best["tensor_batches"] / best["dataloader"],
                         "tensor_batches_vs_capacity": best["tensor_batches"] / best["capacity"],
                         "speedup_bound": best["capacity"] / best["dataloader"]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=9000, help="stored vectors to fit h on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps({"device": str(default_device()), "torch_threads": torch.get_num_threads(),
                      "items": args.items, "epochs": args.epochs,
                      **compare(args.items, args.epochs, args.repeats)}))


if __name__ == "__main__":
    main()
