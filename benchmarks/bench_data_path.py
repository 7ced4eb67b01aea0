"""The image data path against the network's capacity, in images per second, on this machine's
training device (GPU when present, else CPU).

capacity: the default preset's (fashion-mnist) new-model CNN, SGD steps at its batch size on one
  synthetic batch already on the device (same precision as training); SimCLR capacity likewise
  for its side-info network, batch size and NT-Xent on two synthetic views.
train / simclr: `train` on the real path (a uint8 image set decoded once, batches augmented on
  the device), one epoch of the preset's training-set size, images per second of its history.
embed: `embed` of the new model over the same set with the evaluation transform, against
  training and against the model's forward pass on a device-resident batch of embed's size.
Every rate is measured in each of several rounds and its best round is kept (wall-clock times on
a shared machine: the least disturbed), the ratios are those of the best rates. Prints one
JSON line.
Usage: .venv/bin/python benchmarks/bench_data_path.py [--images 9000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from torch.nn import functional as F

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ArrayImages
from fctlib.data.transforms import CropFlipTransform, EvalTransform, SimCLRTransform
from fctlib.experiment.config import load_preset
from fctlib.methods.side_info import SimCLRModel, nt_xent, simclr_loss
from fctlib.models.backbones import build_backbone, build_model
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, make_optimizer, train
from fctlib.training.runtime import (
    autocast,
    default_device,
    embed_batch_size,
    prepare_model,
    set_cpu_threads,
    synchronize,
    to_device,
)

MEAN, STD = (0.29,), (0.35,)



def capacity(model, loss_of, cfg, batch, device, seconds: float) -> float:
    """Images per second of optimizer steps on one device-resident synthetic batch, stepped for
    at least `seconds`."""
    model = prepare_model(model, device).train()
    optimizer = make_optimizer(model.parameters(), cfg)

    def step():
        with autocast(device):
            loss = loss_of(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the training loop reads the loss every step too

    for _ in range(3):
        step()
    synchronize(device)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
    synchronize(device)
    return steps * batch / (time.perf_counter() - started)


@torch.no_grad()
def forward_capacity(model, batch, device, seconds: float = 3.0) -> float:
    """Images per second of the model's forward pass (eval mode) on a device-resident batch."""
    model = prepare_model(model, device).eval()
    with autocast(device):
        model(batch)
        synchronize(device)
        images, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model(batch)
            images += len(batch)
        synchronize(device)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=9000,
                        help="training images (the preset's: 10 classes x 900)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="minimum seconds of each capacity figure")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every measurement (the best round counts)")
    args = parser.parse_args()
    threads = set_cpu_threads()
    device = default_device()
    preset = load_preset("fashion-mnist")
    new, side = preset.new, preset.side_info
    rng = np.random.default_rng(0)
    images = ArrayImages(rng.integers(0, 256, (args.images, 1, 28, 28), dtype=np.uint8),
                         np.arange(args.images) % 10)
    evaluate = EvalTransform(28, 1, MEAN, STD)
    b, bs = new.training.batch_size, side.training.batch_size
    # synthetic batches: the same images, normalised once and kept on the device
    x = to_device(evaluate(images.images[:b]), device)
    y = torch.from_numpy(images.labels[:b]).to(device)
    views = [to_device(evaluate(images.images[i * bs:(i + 1) * bs]), device) for i in (0, 1)]
    embed_batch = to_device(evaluate(images.images[:embed_batch_size(device)]), device)
    one_epoch = dataclasses.replace(new.training, epochs=1, warmup_epochs=0)
    simclr_epoch = dataclasses.replace(side.training, epochs=1, warmup_epochs=0)
    augment = CropFlipTransform(28, 1, MEAN, STD, crop_padding=preset.data.crop_padding)
    pair = SimCLRTransform(28, 1, MEAN, STD)

    def simclr_model():
        return SimCLRModel(build_backbone(side.model, 1), side.model.embedding_dim)

    rounds = []
    for r in range(args.rounds):
        torch.manual_seed(r)
        figures = {"train_capacity_images_per_s": capacity(
            build_model(new.model, 1, 10), lambda m: F.cross_entropy(m(x)[1], y),
            new.training, b, device, args.seconds)}
        model = build_model(new.model, 1, 10)
        figures["train_images_per_s"] = train(
            model, ImageBatches(images, augment), classification_loss(0.1), one_epoch, seed=r,
            device=device)[-1]["items_per_s"]
        figures["simclr_capacity_images_per_s"] = capacity(
            simclr_model(), lambda m: nt_xent(m(views[0]), m(views[1]), 0.5), side.training,
            bs, device, args.seconds)
        figures["simclr_images_per_s"] = train(
            simclr_model(), ImageBatches(images, pair, labels=False), simclr_loss(0.5),
            simclr_epoch, seed=r, device=device)[-1]["items_per_s"]
        embed(model, images.subset(np.arange(512)), evaluate, device=device)  # warm-up
        synchronize(device)
        started = time.perf_counter()
        embed(model, images, evaluate, device=device)
        synchronize(device)
        figures["embed_images_per_s"] = args.images / (time.perf_counter() - started)
        figures["embed_capacity_images_per_s"] = forward_capacity(model, embed_batch, device,
                                                                 args.seconds)
        rounds.append(figures)
    # each rate: its best round (wall clock on a shared machine: the least disturbed one)
    best = {key: max(f[key] for f in rounds) for key in rounds[0]}
    ratios = {
        "train_vs_capacity": best["train_images_per_s"] / best["train_capacity_images_per_s"],
        "simclr_vs_capacity": best["simclr_images_per_s"] / best["simclr_capacity_images_per_s"],
        "embed_vs_train": best["embed_images_per_s"] / best["train_images_per_s"],
        "embed_vs_capacity": best["embed_images_per_s"] / best["embed_capacity_images_per_s"],
    }
    print(json.dumps({
        "device": str(device), "torch_threads": threads, "preset": preset.name,
        "images": args.images, "batch_size": b, "simclr_batch_size": bs, **best, **ratios,
        "rounds": rounds,
    }))


if __name__ == "__main__":
    main()
