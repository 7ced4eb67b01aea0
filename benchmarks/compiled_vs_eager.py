"""h trained compiled and eagerly on this device, through its BatchNorm freeze, from one start on
one set of features: do the two compute the same training?

Why: on one H200 (results/benchmarks/gpu/2026-12-04-compiled) h trained with CUDA graphs saw its
loss jump at the freeze from 0.055 to 0.445 (back to its first epoch's 0.436) and end at 0.28, where
every committed CPU fit of the recipe moves by under 6% there (float32, bfloat16): the statistics it
froze were not its training's, or its frozen forward was wrong. The CPU tests
(tests/training/test_compiled.py, tests/test_gpu_check.py) cannot run CUDA graphs; this does, in
seconds, before the GPU check trains anything. It reports each arm's per-epoch losses, the largest
relative difference between them, each BatchNorm's running statistics at the freeze against eager's,
and the loss ratio across the freeze (first frozen epoch / last free one).

Usage: PYTHONPATH=. python3 benchmarks/compiled_vs_eager.py OUT [--preset P] [--tiny] [--mode M]
(writes OUT/compiled_vs_eager.json; M: a mode as FCT_COMPILE spells it, set as FCT_COMPILE_H for
the compiled fit; default the device's compile mode for h)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from fctlib.experiment.config import Preset, load_preset
from fctlib.io import save_json
from fctlib.methods.fct import train_transformation
from fctlib.models.transformation import Transformation
from fctlib.training.compiled import H_VARIABLE, compile_mode, fallbacks
from fctlib.training.runtime import default_device

PRESET = "tiny-imagenet-100-gpu"
# The compiled arm fuses and reorders reductions, so the two drift apart by rounding: in float32
# on a CPU, full size, losses 6e-5 and statistics up to 1.2% apart after 60 steps; a GPU rounds
# to bfloat16 (2^-8 an operation), so a few times that. The failure this looks for moved the loss
# 6-8x on the H200; statistics that never moved are 60-300% off (tests/test_gpu_check.py).
AGREEMENT_RTOL = 0.25


def features(preset: Preset, items: int) -> list[torch.Tensor]:
    """(old, side, new) with new a fixed smooth function of old and side: something h can learn,
    of the preset's embedding sizes."""
    generator = torch.Generator().manual_seed(0)
    dim, side_dim = preset.new.model.embedding_dim, preset.side_info.model.embedding_dim
    old = torch.randn(items, dim, generator=generator)
    side = torch.randn(items, side_dim, generator=generator)
    mix_old = torch.randn(dim, dim, generator=generator) / dim ** 0.5
    mix_side = torch.randn(side_dim, dim, generator=generator) / side_dim ** 0.5
    return [old, side, torch.tanh(old @ mix_old + side @ mix_side)]


@contextlib.contextmanager
def compile_setting(value: str):
    """FCT_COMPILE_H (h's compile mode) set to `value` inside, as it was after."""
    before = os.environ.get(H_VARIABLE)
    os.environ[H_VARIABLE] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[H_VARIABLE]
        else:
            os.environ[H_VARIABLE] = before


def batchnorm_statistics(model: nn.Module) -> list[torch.Tensor]:
    """Each BatchNorm's running mean and variance, side by side, copied to the CPU."""
    return [torch.cat([m.running_mean, m.running_var]).detach().float().cpu()
            for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def fit_through_freeze(preset: Preset, device: torch.device, setting: str, *,
                       tiny: bool) -> dict:
    """h of the preset's widths and recipe fitted under FCT_COMPILE_H=`setting` as a run fits it
    (`train_transformation`'s path: its cached passes shown one per epoch, BatchNorm frozen from
    the middle on), for a few epochs: per-epoch losses, the BatchNorm statistics at the freeze,
    whether the compiled step fell back to eager."""
    cfg = preset.transformation.training
    cfg = replace(cfg, epochs=4 if tiny else 6, warmup_epochs=1,
                  batch_size=64 if tiny else cfg.batch_size)
    views = max(preset.transformation.feature_views, 1)  # 0 (fresh): one pass stands in
    old, side, new = features(preset, views * (4 if tiny else 20) * cfg.batch_size)
    torch.manual_seed(0)
    model = Transformation(old.shape[1], side.shape[1], new.shape[1],
                           preset.transformation.branch_widths, preset.transformation.mixer_widths)
    frozen_at: list[list[torch.Tensor]] = []

    def snapshot(net: nn.Module, epoch: int) -> None:
        if epoch == cfg.epochs // 2:
            frozen_at.append(batchnorm_statistics(net))

    with compile_setting(setting), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        history = train_transformation(model, old.numpy(), side.numpy(), new.numpy(), cfg,
                                       seed=0, views=views, device=device,
                                       on_epoch_start=snapshot)
    fell_back = fallbacks(caught)
    return {"loss": [e["loss"] for e in history], "statistics": frozen_at[0],
            "freeze_epoch": cfg.epochs // 2, "fell_back": fell_back}


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |b| (Euclidean norms)."""
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def compare(eager: dict, compiled: dict) -> dict:
    """The two fits side by side and whether they agree within AGREEMENT_RTOL."""
    loss_diff = max(abs(c - e) / e for c, e in zip(compiled["loss"], eager["loss"], strict=True))
    stats_diff = [relative_difference(c, e) for c, e in
                  zip(compiled["statistics"], eager["statistics"], strict=True)]
    freeze = eager["freeze_epoch"]

    def jump(loss: list[float]) -> float:
        return loss[freeze] / loss[freeze - 1]

    agrees = (loss_diff <= AGREEMENT_RTOL and max(stats_diff) <= AGREEMENT_RTOL
              and not compiled["fell_back"])
    return {"agrees": agrees, "tolerance": AGREEMENT_RTOL,
            "max_relative_loss_difference": float(f"{loss_diff:.3g}"),
            "batchnorm_statistics_relative_difference_at_freeze": [float(f"{d:.3g}")
                                                                    for d in stats_diff],
            "loss_ratio_across_freeze": {"eager": round(jump(eager["loss"]), 4),
                                         "compiled": round(jump(compiled["loss"]), 4)},
            "loss": {"eager": eager["loss"], "compiled": compiled["loss"]},
            "freeze_epoch": freeze, "compiled_fell_back_to_eager": compiled["fell_back"]}


def compiled_against_eager(preset: Preset, device: torch.device, *, tiny: bool,
                           mode: str | None = None) -> dict:
    """h fitted eagerly and compiled in `mode` (default: the device's compile mode for h, or
    torch.compile's default mode where h trains eagerly there) and compared (`compare`)."""
    mode = mode or compile_mode(device, h_fit=True) or "default"
    eager = fit_through_freeze(preset, device, "0", tiny=tiny)
    compiled = fit_through_freeze(preset, device, mode, tiny=tiny)
    return {"device": str(device), "mode": mode, **compare(eager, compiled)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--tiny", action="store_true", help="a few small batches (a CPU's size)")
    parser.add_argument("--mode", default=None, help="the compile mode to compare (FCT_COMPILE's "
                        "values)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = compiled_against_eager(load_preset(args.preset), default_device(), tiny=args.tiny,
                                    mode=args.mode)
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(result, args.out / "compiled_vs_eager.json")
    print({k: v for k, v in result.items() if k != "loss"}, flush=True)


if __name__ == "__main__":
    main()
