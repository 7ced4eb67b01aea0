"""Training speed of the GPU preset's networks, eager against compiled, through the library's own
`train` and `embed` on synthetic batches already on the device (no data path).

For each network, batch and optimiser of `tiny-imagenet-100-gpu` (the new ResNet-18 at batch 512
with SGD, bt2's batch-128 Adam recipe, SimCLR's two views, h's MLP at batch 1024) it trains
3 short epochs under each FCT_COMPILE mode and records the steady rate (epochs 2-3), the first
epoch's extra seconds (compilation, autotuning), FLOP/item (torch's FlopCounter, forward and
backward), the model FLOP utilisation against the GPU's dense bf16 peak, and how often one eager
step waits for the GPU (torch's sync debug mode; SimCLR's augmentation too). Rows are written to
OUT/speed.csv and OUT/speed.json as they finish; a budget skips what would not fit. On a GPU each
network's eager step is also captured whole (forward, loss, backward, optimiser step) as one CUDA
graph and replayed (`whole_step_graph_rate`): how fast its kernels run with nothing launched from
Python, against the compiled modes' rates.
Another preset's networks at its input shape: `--preset fashion-mnist --image 1 28 10` (how
torch.compile does on a CPU).
Usage: python benchmarks/gpu_speed.py OUT [--tiny] [--budget-s 420] [--preset P --image C S K]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from fctlib.data.images import ArrayImages
from fctlib.data.transforms import EvalTransform, SimCLRTransform
from fctlib.experiment.config import load_preset
from fctlib.experiment.provenance import provenance
from fctlib.io import atomic_write, save_json
from fctlib.methods.bct_variants import build_bct_model, variant_loss
from fctlib.methods.fct import _mse_step
from fctlib.methods.side_info import SimCLRModel, simclr_loss
from fctlib.models.backbones import build_backbone, build_model
from fctlib.models.transformation import Transformation
from fctlib.training.compiled import compile_mode, fallbacks
from fctlib.training.config import TrainConfig
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, make_optimizer, train
from fctlib.training.runtime import (
    autocast,
    default_device,
    prepare_model,
    synchronize,
    to_device,
)

PRESET = "tiny-imagenet-100-gpu"
# Dense bf16 tensor-core peaks (FLOP/s) from NVIDIA's data sheets (half the "with sparsity"
# figure), by device-name substring: the PCIe and NVL cards before the SXM ones of the same name.
PEAK_BF16 = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H200 NVL": 835e12, "H200": 989e12,
             "H100": 989e12, "A100": 312e12}
GOALS = {"supervised_img_per_s": 80_000, "h_items_per_s": 500_000, "embed_img_per_s": 40_000}


def bf16_peak(gpu_name: str) -> float | None:
    """The dense bf16 peak of the GPU so named (FLOP/s); None for another device."""
    return next((v for k, v in PEAK_BF16.items() if k in gpu_name), None)


@dataclass(frozen=True)
class Setting:
    """What is measured: a preset's networks at an input shape (channels, size, classes), how many
    batches an epoch has, how many images `embed` runs over, the batch (None: the preset's)."""

    preset: str = PRESET
    channels: int = 3
    size: int = 64
    classes: int = 100
    steps: int = 40
    embed_images: int = 50_000
    batch_size: int | None = None
    h_batches: int = 100  # h's batches per epoch (stored vectors are cheap)


# --tiny: a path check, seconds on a CPU (h keeps its preset's widths: 4 batches an epoch)
TINY = {"size": 32, "steps": 2, "embed_images": 64, "batch_size": 8, "h_batches": 4}


class Case:
    """One network to train: how to build it, its loss step, its data and settings."""

    def __init__(self, name, build, loss, make_data, cfg, items_per_row=1):
        self.name, self.build, self.loss, self.make_data = name, build, loss, make_data
        self.cfg, self.items_per_row = cfg, items_per_row


def cases(setting: Setting, device: torch.device) -> list[Case]:
    """The preset's trained networks at their batch sizes, on synthetic device-resident data."""
    preset = load_preset(setting.preset)
    spec, classes, size, steps = preset.new.model, setting.classes, setting.size, setting.steps
    channels = setting.channels

    def labelled(batch: int) -> TensorDataset:
        n = batch * steps
        return TensorDataset(torch.randn(n, channels, size, size, device=device),
                             torch.randint(0, classes, (n,), device=device))

    def two_views(batch: int) -> TensorDataset:
        n = batch * steps
        return TensorDataset(*(torch.randn(n, channels, size, size, device=device)
                               for _ in range(2)))

    def config(cfg: TrainConfig) -> TrainConfig:
        cfg = replace(cfg, epochs=3, warmup_epochs=0, num_workers=0)
        return replace(cfg, batch_size=setting.batch_size) if setting.batch_size else cfg

    new_cfg, bt2_cfg = config(preset.new.training), config(preset.method("bct").bt2_training)
    side_cfg, h_cfg = config(preset.side_info.training), config(preset.transformation.training)
    old_weight = torch.randn(classes, spec.embedding_dim)
    covered = torch.arange(classes) < classes // 2
    dim, side_dim = spec.embedding_dim, preset.side_info.model.embedding_dim
    h_items = setting.h_batches * h_cfg.batch_size

    def features():
        return [torch.randn(h_items, d, device=device) for d in (dim, side_dim, dim)]

    return [
        Case(f"supervised (new, batch {new_cfg.batch_size}, {new_cfg.optimizer})",
             lambda: build_model(spec, channels, classes),
             classification_loss(0.1), lambda: labelled(new_cfg.batch_size),
             new_cfg),
        Case(f"bt2 (batch {bt2_cfg.batch_size}, {bt2_cfg.optimizer})",
             lambda: build_bct_model("bt2", spec, channels, classes, 30.0),
             variant_loss("bt2", 0.1, old_weight, covered, 10.0),
             lambda: labelled(bt2_cfg.batch_size), bt2_cfg),
        Case(f"SimCLR (2 views, batch {side_cfg.batch_size}, {side_cfg.optimizer})",
             lambda: SimCLRModel(build_backbone(preset.side_info.model, channels), side_dim),
             simclr_loss(0.5), lambda: two_views(side_cfg.batch_size),
             side_cfg, items_per_row=2),
        Case(f"h (MLP, batch {h_cfg.batch_size}, {h_cfg.optimizer})",
             lambda: Transformation(dim, side_dim, dim, tuple(preset.transformation.branch_widths),
                                    tuple(preset.transformation.mixer_widths)),
             _mse_step, lambda: TensorDataset(*features()), h_cfg),
    ]


def flop_per_item(case: Case, device: torch.device) -> float:
    """Forward + backward FLOP of one training item (torch's FlopCounter over one eager step)."""
    model = prepare_model(case.build(), device).train()
    data = case.make_data()
    batch = to_device(list(data[: case.cfg.batch_size]), device)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(device):
            loss = case.loss(model, batch)
        loss.backward()
    return counter.get_total_flops() / (case.cfg.batch_size * case.items_per_row)


def device_waits(step, device: torch.device) -> int | None:
    """How often `step()` waits for the GPU: the operations torch's sync debug mode reports
    (`.item()`, `nonzero`, boolean indexing, a copy to the host), counted on its second call
    (after first-use allocations); None on a CPU, where nothing waits (the step runs once)."""
    step()
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def training_step(case: Case, device: torch.device):
    """One eager training step of `case` on its first batch: loss, backward, optimiser step."""
    model = prepare_model(case.build(), device).train()
    optimizer = make_optimizer(model.parameters(), case.cfg)
    batch = to_device(list(case.make_data()[: case.cfg.batch_size]), device)

    def step() -> None:
        with autocast(device):
            loss = case.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def simclr_views_step(setting: Setting, device: torch.device):
    """SimCLR's two augmented views of one uint8 batch at the preset's side-info batch size."""
    preset = load_preset(setting.preset)
    batch = setting.batch_size or preset.side_info.training.batch_size
    images = torch.randint(0, 256, (batch, setting.channels, setting.size, setting.size),
                           dtype=torch.uint8, device=device)
    transform = SimCLRTransform(setting.size, setting.channels, (0.5,) * setting.channels,
                                (0.25,) * setting.channels)
    return lambda: transform(images)


def train_rate(case: Case, device: torch.device) -> dict:
    """Steady items/s (epochs 2-3) and the first epoch's extra seconds under the current
    FCT_COMPILE; whether compilation fell back to eager."""
    torch.manual_seed(0)
    model = case.build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        history = train(model, case.make_data(), case.loss, case.cfg, seed=0, device=device,
                        desc=case.name)
    fell_back = fallbacks(caught)
    steady = history[1:]
    items = sum(h["items_per_s"] * h["seconds"] for h in steady)
    seconds = sum(h["seconds"] for h in steady)
    rate = case.items_per_row * items / seconds
    return {"items_per_s": round(rate, 1),
            "first_epoch_extra_s": round(history[0]["seconds"] - seconds / len(steady), 2),
            "final_loss": round(history[-1]["loss"], 4),
            "fell_back_to_eager": fell_back[0] if fell_back else ""}


def whole_step_graph_rate(case: Case, device: torch.device, replays: int = 50) -> dict:
    """Items/s of `case`'s eager training step (forward, loss, backward, optimiser step) captured
    whole as one CUDA graph and replayed on one batch: the step's own kernels with nothing launched
    from Python between them, what a whole-step graph could reach against the compiled modes'
    rates (a constant learning rate on one batch: a measurement, not a training)."""
    model, cfg = prepare_model(case.build(), device).train(), case.cfg
    optimizer = make_optimizer(model.parameters(), cfg, capturable=True)
    batch = to_device(list(case.make_data()[: cfg.batch_size]), device)

    def body() -> torch.Tensor:
        # autocast's weight cache would hold casts made outside the graph
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = case.loss(model, batch)
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream(device)  # warm-up (cuDNN's autotuning, the optimiser's state)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # the graph's backward writes the gradients afresh
    with torch.cuda.graph(graph):
        loss = body()
    graph.replay()
    synchronize(device)
    began = time.perf_counter()
    for _ in range(replays):
        graph.replay()
    synchronize(device)
    seconds = (time.perf_counter() - began) / replays
    return {"items_per_s": round(case.items_per_row * cfg.batch_size / seconds, 1),
            "ms_per_step": round(1000 * seconds, 3), "final_loss": round(float(loss), 4)}


def embed_rate(setting: Setting, device: torch.device) -> list[dict]:
    """Images/s of `embed` (the library's batching, eval transform) with the preset's new
    network."""
    preset = load_preset(setting.preset)
    n, size, channels = setting.embed_images, setting.size, setting.channels
    images = ArrayImages(torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8),
                         torch.zeros(n, dtype=torch.long), layout="NCHW")
    model = build_model(preset.new.model, channels, setting.classes)
    transform = EvalTransform(size, channels, (0.5,) * channels, (0.25,) * channels)
    rows = []
    for batch in (512, 2048):
        embed(model, images.subset(range(min(n, 4 * batch))), transform, batch_size=batch,
              device=device)  # warm-up: cudnn autotuning
        synchronize(device)
        began = time.perf_counter()
        embed(model, images, transform, batch_size=batch, device=device)
        synchronize(device)
        rows.append({"case": f"embed (batch {batch})", "mode": "eager",
                     "items_per_s": round(n / (time.perf_counter() - began), 1)})
    return rows


class Results:
    """Rows measured so far, written (atomically) after each one."""

    def __init__(self, out: Path, info: dict):
        self.out, self.info, self.rows = out, info, []
        self.started = time.perf_counter()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        print(f"[gpu_speed] {row}", flush=True)
        table = pd.DataFrame(self.rows)
        atomic_write(self.out / "speed.csv", lambda tmp: table.to_csv(tmp, index=False))
        save_json({"provenance": self.info, "goals": GOALS, "rows": self.rows,
                   "elapsed_s": round(time.perf_counter() - self.started, 1)},
                  self.out / "speed.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiny", action="store_true", help="small images and batches (a CPU)")
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--image", nargs=3, type=int, metavar=("CHANNELS", "SIZE", "CLASSES"),
                        default=(3, 64, 100), help="the preset's input shape and classes")
    parser.add_argument("--steps", type=int, default=40, help="batches per epoch")
    parser.add_argument("--embed-images", type=int, default=50_000)
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--modes", nargs="+", default=["0", "default", "reduce-overhead"],
                        help="FCT_COMPILE values to measure, in order")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = bf16_peak(name)
    channels, size, classes = args.image
    setting = Setting(args.preset, channels, size, classes, args.steps, args.embed_images)
    if args.tiny:
        setting = replace(setting, **TINY)
    results = Results(args.out, {**provenance(args.preset, [0], command=" ".join(sys.argv)),
                                 "peak_bf16_flop_s": peak})
    for row in embed_rate(setting, device):
        results.add(row)
    results.add({"case": "SimCLR views (transform only)", "mode": "eager",
                 "device_waits_per_step": device_waits(simclr_views_step(setting, device),
                                                       device)})
    # the slowest compile last: a budget cut loses the least informative rows
    for mode in args.modes:
        for case in cases(setting, device):
            left = args.budget_s - (time.perf_counter() - results.started)
            row = {"case": case.name, "mode": mode, "batch": case.cfg.batch_size}
            if left < (15 if mode == "0" else 90):
                results.add({**row, "skipped": f"budget: {left:.0f} s left"})
                continue
            os.environ["FCT_COMPILE"] = mode
            flop = flop_per_item(case, device)
            try:
                measured = train_rate(case, device)
            except Exception as error:  # a mode this torch cannot run: say so, measure the rest
                results.add({**row, "error": f"{type(error).__name__}: {str(error)[:300]}"})
                continue
            row.update(measured, compiled=compile_mode(device) is not None
                       and not measured["fell_back_to_eager"],
                       gflop_per_item=round(flop / 1e9, 4),
                       tflop_s=round(measured["items_per_s"] * flop / 1e12, 2))
            if peak:
                row["model_flop_utilisation"] = round(measured["items_per_s"] * flop / peak, 4)
            if mode == "0":
                row["device_waits_per_step"] = device_waits(training_step(case, device), device)
            results.add(row)
    if device.type == "cuda":
        for case in cases(setting, device):
            row = {"case": case.name, "mode": "whole-step graph", "batch": case.cfg.batch_size}
            left = args.budget_s - (time.perf_counter() - results.started)
            if left < 15:
                results.add({**row, "skipped": f"budget: {left:.0f} s left"})
                continue
            try:
                row.update(whole_step_graph_rate(case, device))
            except Exception as error:  # a step that waits for the GPU cannot be captured
                row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
            results.add(row)
    print(f"[gpu_speed] done in {time.perf_counter() - results.started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
