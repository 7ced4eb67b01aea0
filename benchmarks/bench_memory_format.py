"""Channels-first against channels-last (FCT_CPU_CHANNELS_LAST=1) on this CPU: training steps of
each CPU preset's image networks, in images per second.

For every network a preset trains on images (old, new, the side-info network, the other
family's network of `methods.cross`): SGD steps (forward, cross-entropy on its logits, backward,
step) on one synthetic batch of as many images as its training passes per step (SimCLR's side-info
network: both views). The two layouts alternate in `--rounds` rounds of `--steps` steps each, on
one machine in one process, so drift of a virtual machine's speed reaches both alike; the median
round is reported. Prints one JSON line. Usage:
.venv/bin/python benchmarks/bench_memory_format.py [--rounds 6] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.nn import functional as F

import fctlib.methods  # noqa: F401  (registers methods.cross)
from fctlib.experiment.config import load_preset
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec

PRESETS = {"fashion-mnist": (1, 28), "tiny-imagenet-100": (3, 32)}  # channels, image size
CLASSES = 10  # the logits' width changes nothing measurable: the convolutions dominate


def networks(preset_name: str) -> dict[str, tuple[ModelSpec, int]]:
    """The preset's image networks with the images each of its training steps passes."""
    preset = load_preset(preset_name)
    side = preset.side_info
    return {"old": (preset.old.model, preset.old.training.batch_size),
            "new": (preset.new.model, preset.new.training.batch_size),
            "side-info (both views)": (side.model, 2 * side.training.batch_size),
            "cross": (preset.method("cross").model, preset.new.training.batch_size)}


def sgd_step(spec: ModelSpec, channels: int, size: int, batch: int, channels_last: bool):
    """One network's training step on a fixed synthetic batch, in the given layout."""
    torch.manual_seed(0)
    model = build_model(spec, channels, CLASSES)
    images = torch.randn(batch, channels, size, size)
    labels = torch.randint(0, CLASSES, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(images)[1], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def compare(spec: ModelSpec, channels: int, size: int, batch: int, rounds: int,
            steps: int) -> dict:
    """Median images/s of each layout over alternating rounds, and their ratio."""
    run = {layout: sgd_step(spec, channels, size, batch, layout == "channels_last")
           for layout in ("channels_first", "channels_last")}
    rates: dict[str, list[float]] = {layout: [] for layout in run}
    for step in run.values():  # warm-up: oneDNN picks and caches its kernels
        for _ in range(3):
            step()
    for _ in range(rounds):
        for layout, step in run.items():
            started = time.perf_counter()
            for _ in range(steps):
                step()
            rates[layout].append(steps * batch / (time.perf_counter() - started))
    medians = {layout: statistics.median(r) for layout, r in rates.items()}
    return {"arch": spec.arch, "width": spec.width, "batch": batch, "images_per_s": medians,
            "rounds": rates, "ratio": medians["channels_last"] / medians["channels_first"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = {f"{preset}/{name}": compare(spec, channels, size, batch, args.rounds, args.steps)
            for preset, (channels, size) in PRESETS.items()
            for name, (spec, batch) in networks(preset).items()}
    print(json.dumps({"torch_threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "rounds": args.rounds, "steps": args.steps, "networks": rows}))


if __name__ == "__main__":
    main()
