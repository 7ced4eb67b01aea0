"""Training throughput with and without the suite's CPU speed settings, in items per second.

decoded-once image cache: the Tiny-ImageNet-100 preset's CNN (width 16, 128-d, 32 px, its
  augmentation) trained from images decoded once into a uint8 array (what the suite does) against
  decoding each 64 x 64 JPEG at every step (a plain image-folder loader).
cached transformation features: fitting h on stored (old, side-info, new) embeddings (what the
  suite does) against running the three backbones on every batch (the reference code).
Prints one JSON line. Usage: .venv/bin/python benchmarks/bench_training.py [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import BatchSampler, RandomSampler

from fctlib.data.batches import ImageBatches
from fctlib.data.images import FileImages
from fctlib.data.transforms import CropFlipTransform
from fctlib.experiment.config import load_preset
from fctlib.models.backbones import build_backbone, build_model
from fctlib.models.transformation import Transformation


def write_small_jpegs(folder: Path, count: int, classes: int, seed: int = 0) -> FileImages:
    """`count` distinct 64 x 64 JPEGs (Tiny-ImageNet's size), labels cycling over `classes`."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        paths.append(folder / f"{i:05d}.jpg")
        coarse.resize((64, 64), Image.BICUBIC).save(paths[-1], quality=90)
    return FileImages(paths, np.arange(count) % classes, channels=3)


def steps_per_second(step, batches: int, items: int) -> float:
    """Items per second over `batches` calls of `step()`, after one warm-up call."""
    step()
    started = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * items / (time.perf_counter() - started)


def bench_image_cache(batches: int) -> dict:
    """The Tiny-ImageNet CNN's SGD steps fed from decoded-once arrays vs per-step JPEG decoding."""
    preset = load_preset("tiny-imagenet-100")
    spec, cfg = preset.new.model, preset.new.training
    size = preset.data.dataset.image_size
    model = build_model(spec, 3, 100)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    transform = CropFlipTransform(size, 3, (0.5,) * 3, (0.25,) * 3,
                                  crop_padding=preset.data.crop_padding)
    rates, cpu = {}, torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_small_jpegs(Path(tmp), (batches + 1) * cfg.batch_size, 100)
        for name, path in (("decode_every_step", "stream"), ("decoded_once_cache", "memory")):
            rows = BatchSampler(RandomSampler(files), cfg.batch_size, drop_last=True)
            loader = iter(ImageBatches(files, transform, path=path).batches(rows, cpu))

            def step(loader=loader):
                x, y, _ = next(loader)
                loss = F.cross_entropy(model(x)[1], y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            rates[name] = steps_per_second(step, batches, cfg.batch_size)
    return {"preset": preset.name, "batch_size": cfg.batch_size, **rates}


def bench_transformation_features(batches: int) -> dict:
    """Fitting h (Fashion-MNIST preset) on cached features vs computing them on every batch."""
    preset = load_preset("fashion-mnist")
    size, batch = 28, preset.transformation.training.batch_size
    backbones = [build_backbone(m.model, 1).eval()
                 for m in (preset.old, preset.side_info, preset.new)]
    h = Transformation(preset.old.model.embedding_dim, preset.side_info.model.embedding_dim,
                       preset.new.model.embedding_dim, tuple(preset.transformation.branch_widths),
                       tuple(preset.transformation.mixer_widths))
    opt = torch.optim.Adam(h.parameters(), lr=1e-3)
    images = torch.randn(batch, 1, size, size)

    def fit(old, side, new):
        loss = F.mse_loss(h(old, side), new)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def features():
        with torch.no_grad():
            return [b(images) for b in backbones]

    cached = features()
    return {"preset": preset.name, "batch_size": batch,
            "on_the_fly": steps_per_second(lambda: fit(*features()), batches, batch),
            "cached_features": steps_per_second(lambda: fit(*cached), batches, batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps({"torch_threads": torch.get_num_threads(),
                      "image_cache": bench_image_cache(args.batches),
                      "transformation_features": bench_transformation_features(args.batches)}))


if __name__ == "__main__":
    main()
