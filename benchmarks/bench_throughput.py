"""Items per second of upgrading a gallery item: FCT's transformation against backfilling it.

transform: the reference MLP (128-d old embedding + 128-d side-info -> 128-d; branches 256-256,
  mixer 2048-2048) on stored vectors.
backfill: read a stored JPEG (500 x 375 px, ImageNet-like), decode it, resize to 256, centre-crop
  224, normalise, and run the reference ResNet-50-128 (the paper's ImageNet setting).
Both use the same batch size on the same machine, inference only. Prints one JSON line.
Usage: .venv/bin/python benchmarks/bench_throughput.py {transform,backfill} [--batch-size 64]
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
from torchvision.io import decode_jpeg, read_file
from torchvision.transforms import v2

from fctlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fctlib.models.backbones import build_backbone
from fctlib.models.spec import ModelSpec
from fctlib.models.transformation import Transformation

REFERENCE_RESNET = ModelSpec(arch="resnet50", embedding_dim=128, small_input_stem=False)


def write_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` distinct 500 x 375 JPEGs (smooth random colour fields with grain, quality 90)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((500, 375), Image.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        image = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))
        paths.append(folder / f"{i:04d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def items_per_second(step, batch_size: int, min_seconds: float, min_batches: int) -> dict:
    """Run `step()` (one batch) once to warm up, then until both minimums are reached."""
    step()
    batches, started = 0, time.perf_counter()
    while batches < min_batches or time.perf_counter() - started < min_seconds:
        step()
        batches += 1
    seconds = time.perf_counter() - started
    return {"items_per_s": batches * batch_size / seconds, "batches": batches,
            "seconds": seconds}


@torch.no_grad()
def bench_transform(batch_size: int, min_seconds: float) -> dict:
    """The reference MLP on random stored vectors."""
    model = Transformation(128, 128, 128, (256, 256), (2048, 2048)).eval()
    old, side = torch.randn(batch_size, 128), torch.randn(batch_size, 128)
    return items_per_second(lambda: model(old, side), batch_size, min_seconds, 5)


@torch.no_grad()
def bench_backfill(batch_size: int, min_seconds: float) -> dict:
    """JPEG read + decode + resize/crop/normalise + ResNet-50-128 at 224 px."""
    model = build_backbone(REFERENCE_RESNET, 3).eval()
    preprocess = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224),
                             v2.ToDtype(torch.float32, scale=True),
                             v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), batch_size)

        def step():
            batch = torch.stack([preprocess(decode_jpeg(read_file(str(p)))) for p in paths])
            model(batch)

        figures = items_per_second(step, batch_size, min_seconds, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["transform", "backfill"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=10.0)
    args = parser.parse_args()
    bench = bench_transform if args.what == "transform" else bench_backfill
    figures = bench(args.batch_size, args.min_seconds)
    print(json.dumps({"what": args.what, "batch_size": args.batch_size,
                      "torch_threads": torch.get_num_threads(), **figures}))


if __name__ == "__main__":
    main()
