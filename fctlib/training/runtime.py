"""Where and how computations run: seeds, device choice, CPU threads, GPU kernels, mixed
precision."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(seed: int, *parts: int) -> int:
    """A reproducible seed for a sub-task (an epoch, a worker) of a seeded run."""
    value = seed
    for part in parts:
        value = (value * 1_000_003 + part) % 2**62
    return value


def _switch(variable: str, on: str, off: str) -> bool:
    """A 0/1 environment switch, 0 when unset; another value is refused in one line saying what
    1 (`on`) and 0 (`off`) do."""
    value = os.environ.get(variable, "0")
    if value not in ("0", "1"):
        from fctlib.errors import UserError

        raise UserError(f"{variable}={value!r} is not 0 or 1; 1 {on}, 0 (the default) {off}")
    return value == "1"


def default_device() -> torch.device:
    """CUDA when a GPU is present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_threads() -> int:
    """torch's intra-op threads for this process: OMP_NUM_THREADS when set, else the CPUs this
    process may run on shared by the processes torchrun started on the node (at least 1)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, len(os.sched_getaffinity(0)) // max(1, processes))


def set_cpu_threads() -> int:
    """Set torch's intra-op threads to `cpu_threads()` and return the number."""
    threads = cpu_threads()
    torch.set_num_threads(threads)
    return threads


def gpu_kernels_deterministic() -> bool:
    """Whether GPU kernels are chosen to be deterministic (FCT_DETERMINISTIC=1) rather than
    autotuned for speed (unset or 0): two autotuned runs of one seed can differ (new/new top-1
    36.20 and 35.40 on one H200, results/benchmarks/gpu/README.md). Whether the deterministic
    ones make two compiled GPU runs agree bit for bit, and at what cost, is what
    `benchmarks/gpu_variance.py` measures (not yet run on a GPU)."""
    return _switch("FCT_DETERMINISTIC", "asks for deterministic GPU kernels", "autotunes them")


def set_gpu_kernels() -> bool:
    """Choose cuDNN's and torch's kernels as `gpu_kernels_deterministic` says and return it:
    deterministic algorithms (cuBLAS given the fixed workspace they need) or cuDNN autotuning.
    A CPU run is unaffected: torch's CPU kernels are deterministic either way."""
    deterministic = gpu_kernels_deterministic()
    if not torch.cuda.is_available():
        return deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return deterministic


def embed_batch_size(device: torch.device) -> int:
    """Images per forward pass when embedding: 128 on a CPU, where larger batches fall out of the
    caches (`embed` of the fashion-mnist new CNN, 2 cores: 10.2k images/s at 128, 5.8k at 512),
    512 on an accelerator. The embeddings do not depend on it."""
    return 128 if device.type == "cpu" else 512


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_bf16() -> bool:
    """Whether a CPU trains and embeds in bfloat16 mixed precision too (FCT_CPU_BF16=1); unset or
    0, it computes in float32, as every committed CPU result did."""
    return _switch("FCT_CPU_BF16", "trains and embeds in bfloat16 mixed precision on a CPU",
                   "in float32")


def cpu_flush_denormal() -> bool:
    """Whether a CPU flushes denormal floats (below 1.2e-38) to zero (FCT_CPU_FLUSH_DENORMAL=1);
    unset or 0, it computes them exactly, as every committed CPU result did. Arithmetic on them
    is slow on x86: h's Adam state on tiny-imagenet-100 fills with them and its late steps run
    2-14x slower (README, "Denormal floats on a CPU")."""
    return _switch("FCT_CPU_FLUSH_DENORMAL", "flushes denormal floats to zero on a CPU",
                   "computes them exactly")


def set_cpu_denormals() -> bool:
    """Flush denormal floats to zero in this process's CPU arithmetic or not, as
    `cpu_flush_denormal` says; return whether they are flushed (False where the CPU cannot)."""
    flush = cpu_flush_denormal()
    return torch.set_flush_denormal(flush) and flush


def cpu_channels_last() -> bool:
    """Whether a CPU lays out images and convolution weights channels-last too
    (FCT_CPU_CHANNELS_LAST=1), as a GPU does; unset or 0, channels-first, as every committed CPU
    result did. The same arithmetic through other oneDNN kernels (other roundings): on 2 cores
    the width-16 networks train 1.15-1.35x faster, the width-8 ones 0.84-0.96x
    (`benchmarks/bench_memory_format.py`, results/benchmarks/cpu-channels-last-2026-12-06)."""
    return _switch("FCT_CPU_CHANNELS_LAST", "lays out images and convolutions channels-last on "
                   "a CPU", "channels-first")


def channels_last(device: torch.device) -> bool:
    """Whether models and image batches on `device` are laid out channels-last: always on CUDA,
    on a CPU where `cpu_channels_last()` says so."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_channels_last())


# The fewest input channels with which a CPU trains a 1x1 strided convolution channels-last (as
# FCT_CPU_CHANNELS_LAST=1 and torch.compile lay it out): below its vector block (8 channels on
# AVX2, 16 on AVX-512) oneDNN 3.12 (torch 2.14.1) writes that convolution's weight gradient past
# its workspace and hangs, crashes or returns wrong gradients (uxlfoundation/oneDNN#6035, open).
# The widest block, so that every CPU refuses the same networks.
CPU_CHANNELS_LAST_MIN_CHANNELS = 16


def narrow_strided_1x1_convolutions(model: torch.nn.Module) -> list[str]:
    """`model`'s 1x1 convolutions with a stride above 1 and fewer input channels than
    CPU_CHANNELS_LAST_MIN_CHANNELS, named with their input channels: a CPU must not train them
    channels-last."""
    return [f"{name} ({module.in_channels} input channels)"
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1)
            and max(module.stride) > 1
            and module.in_channels < CPU_CHANNELS_LAST_MIN_CHANNELS]


def channels_last_hazard(narrow: list[str]) -> str:
    """Why a CPU must not train the `narrow_strided_1x1_convolutions` named, for a message."""
    return (f"{', '.join(narrow)} channels-last, whose weight gradient oneDNN computes wrongly "
            f"below {CPU_CHANNELS_LAST_MIN_CHANNELS} input channels (uxlfoundation/oneDNN#6035)")


def autocast(device: torch.device):
    """bfloat16 mixed precision on CUDA, and on a CPU where `cpu_bf16()` says so; else a no-op
    context."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16():
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to the device (channels-last memory format where `channels_last` says)."""
    model = model.to(device)
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    return model


def to_device(batch, device: torch.device):
    """Move a tensor, or a tuple/list of tensors, to the device (images channels-last where
    `channels_last` says)."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if not isinstance(batch, torch.Tensor):
        return batch
    batch = batch.to(device, non_blocking=True)
    if batch.dim() == 4 and channels_last(device):
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch
