"""Cached vs on-the-fly features for fitting the FCT transformation: items per second per epoch.

On-the-fly runs the old, side-info and new backbones on every training batch (what the reference
code does); cached computes those features once and then trains the MLP on stored vectors.
Usage: .venv/bin/python benchmarks/bench_transformation_features.py [--preset fashion-mnist]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from fctlib.config import load_preset
from fctlib.models import build_backbone
from fctlib.transformation import Transformation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="fashion-mnist")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    preset = load_preset(args.preset)
    size = preset.data.dataset.image_size or 28
    channels = preset.data.dataset.channels or 1
    batch = preset.transformation.training.batch_size
    old = build_backbone(preset.old.model, channels).eval()
    new = build_backbone(preset.new.model, channels).eval()
    side = build_backbone(preset.side_info.model, channels).eval()
    h = Transformation(preset.old.model.embedding_dim, preset.side_info.model.embedding_dim,
                       preset.new.model.embedding_dim, tuple(preset.transformation.branch_widths),
                       tuple(preset.transformation.mixer_widths))
    opt = torch.optim.Adam(h.parameters(), lr=1e-3)
    images = torch.randn(batch, channels, size, size)

    def step(o, s, n):
        loss = F.mse_loss(h(o, s), n)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        cached = (old(images), side(images), new(images))
    rates = {}
    for mode in ("on-the-fly", "cached"):
        started = time.perf_counter()
        for _ in range(args.batches):
            if mode == "cached":
                step(*cached)
            else:
                with torch.no_grad():
                    features = (old(images), side(images), new(images))
                step(*features)
        rates[mode] = args.batches * batch / (time.perf_counter() - started)
    print(f"preset {preset.name}, batch {batch}, {size}px, {torch.get_num_threads()} threads")
    for mode, rate in rates.items():
        print(f"{mode:>10}: {rate:10.0f} items/s per epoch of transformation training")
    print(f"cached is {rates['cached'] / rates['on-the-fly']:.0f}x faster per epoch; caching "
          "costs one forward pass of the three backbones per feature view")


if __name__ == "__main__":
    main()
