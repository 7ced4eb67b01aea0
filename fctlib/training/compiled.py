"""Compiled training steps: the model of a loss step run through torch.compile, with an eager
fallback when compilation fails (no Triton, no C compiler, an unsupported operation).

FCT_COMPILE chooses: `0` eager, `1` or `default` torch.compile's default mode, `reduce-overhead`
(CUDA graphs), `max-autotune-no-cudagraphs`; unset, `reduce-overhead` on CUDA and eager on a CPU.
FCT_COMPILE_H, where set, chooses the same for the fits of h (FCT's and FastFill's transformations,
which switch BatchNorm to eval mode halfway): on the H200 h trained with CUDA graphs broke at that
switch while the ResNets trained right (results/benchmarks/gpu/README.md), so the GPU check can
train h eagerly and keep the networks compiled.
On one H200 the GPU preset's ResNet-18 (batch 512, bf16) trained at 59.6k img/s eager, 55.3k in
the default mode and 118.1k with CUDA graphs: at this size the GPU waits for kernel launches
(`benchmarks/gpu_speed.py`, results/benchmarks/gpu/2026-12-04-compiled/speed). Only the network is
compiled: the loss steps keep their data-dependent Python (BCT's covered classes) and checkpoints
keep the network's own parameter names. A steered CPU kernel setting compiles into an inductor
cache of its own (`fctlib/__init__.py`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import nn

from fctlib.errors import UserError
from fctlib.training.runtime import (
    autocast,
    channels_last_hazard,
    narrow_strided_1x1_convolutions,
)

FELL_BACK = "training eagerly"  # in the warning of a step that fell back to eager


def fallbacks(caught: list[warnings.WarningMessage]) -> list[str]:
    """The fallback warnings (LossStep's) among warnings caught while training."""
    return [str(w.message) for w in caught if FELL_BACK in str(w.message)]


COMPILE_MODES = {"0": None, "1": "default", "default": "default",
                 "reduce-overhead": "reduce-overhead",
                 "max-autotune-no-cudagraphs": "max-autotune-no-cudagraphs"}


H_VARIABLE = "FCT_COMPILE_H"


def compile_mode(device: torch.device, *, h_fit: bool = False) -> str | None:
    """torch.compile's mode for training on `device` (FCT_COMPILE; for a fit of h, FCT_COMPILE_H
    where set), None for eager."""
    name = H_VARIABLE if h_fit and H_VARIABLE in os.environ else "FCT_COMPILE"
    value = os.environ.get(name)
    if value is None:
        return "reduce-overhead" if device.type == "cuda" else None
    if value not in COMPILE_MODES:
        raise UserError(f"{name}={value!r} is not one of {sorted(COMPILE_MODES)}; unset it "
                        "to compile on CUDA only")
    return COMPILE_MODES[value]


# Every network of one class shares its forward's compiled entries (torch.compile caches them on
# the code): one per architecture, BatchNorm mode and batch size. A GPU seed's h's need more than
# dynamo's default 8 (the ablations' widths, side-info sizes, each fit's frozen BatchNorm): past it
# dynamo runs that forward eagerly from then on, saying so only in its log (seen in the GPU check's
# 08 on a CPU, `TORCH_LOGS=recompiles`).
RECOMPILE_LIMIT = 64


class LossStep:
    """`loss_step(net, batch)` under the device's autocast, `net` compiled when `mode` says so.

    If the compiled call fails, a warning names the error and every later step runs eagerly
    (compilation fails before the step computes anything, so no state is half-updated). On a CPU
    a network with a narrow strided 1x1 convolution trains eagerly from the start, with a
    warning: compiled, it would run channels-last (`narrow_strided_1x1_convolutions`).
    """

    def __init__(self, loss_step: Callable[[nn.Module, object], torch.Tensor], net: nn.Module,
                 device: torch.device, mode: str | None):
        narrow = narrow_strided_1x1_convolutions(net) if device.type == "cpu" else []
        if mode and narrow:
            warnings.warn(f"torch.compile on a CPU would train {channels_last_hazard(narrow)}: "
                          f"{FELL_BACK}", RuntimeWarning, stacklevel=2)
            mode = None
        self.loss_step, self.eager, self.device, self.mode = loss_step, net, device, mode
        if mode:
            from torch._dynamo import config as dynamo  # imported by compiling anyway

            dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
        self.net = torch.compile(net, mode=mode) if mode else net

    @property
    def compiled(self) -> bool:
        """Whether steps still run compiled."""
        return self.net is not self.eager

    def __call__(self, batch) -> torch.Tensor:
        try:
            with autocast(self.device):
                return self.loss_step(self.net, batch)
        except Exception as error:
            if not self.compiled:
                raise
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            warnings.warn(f"torch.compile ({self.mode}) failed, {FELL_BACK}: {first_line} "
                          "(FCT_COMPILE=0 skips compiling)", RuntimeWarning, stacklevel=2)
            self.net = self.eager
            with autocast(self.device):
                return self.loss_step(self.net, batch)
