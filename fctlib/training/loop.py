"""A resumable training loop: SGD or Adam, warm-up + cosine, atomic checkpoints at epoch ends;
data-parallel (DDP) when launched by torchrun."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    TensorDataset,
)

from fctlib.data.batches import ImageBatches
from fctlib.errors import UserError
from fctlib.progress import progress
from fctlib.training import distributed
from fctlib.training.checkpoint import load_torch, save_torch
from fctlib.training.compiled import LossStep, compile_mode
from fctlib.training.config import TrainConfig
from fctlib.training.runtime import (
    CPU_CHANNELS_LAST_MIN_CHANNELS,
    channels_last,
    channels_last_hazard,
    default_device,
    derived_seed,
    narrow_strided_1x1_convolutions,
    prepare_model,
    to_device,
)
from fctlib.training.schedule import warmup_cosine

LOSS_READ_EVERY = 25
# A checkpoint copies the weights and the optimiser's state to disk. On one H200 the GPU preset's
# ResNet-18s spent 0.1-0.15 s per epoch outside their epochs' seconds, mostly these writes, a
# quarter of an epoch (results/benchmarks/gpu/2026-12-04-compiled: "trained in" less the
# histories' seconds). So one is written at the first epoch end this many seconds after the
# previous one, and at the end: an interruption loses at most this much training and an epoch.
CHECKPOINT_EVERY_S = 30.0


def make_optimizer(params, cfg: TrainConfig, *, capturable: bool = False) -> torch.optim.Optimizer:
    """The optimizer that `cfg` names (its fused CUDA kernels when the parameters are on a GPU).
    `capturable`: Adam keeps its step count on the device, as a step captured in a CUDA graph
    needs (SGD keeps no count)."""
    params = [p for p in params if p.requires_grad]
    fused = True if params and all(p.is_cuda for p in params) else None
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay, fused=fused,
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused,
                            capturable=capturable)


def classification_loss(label_smoothing: float) -> Callable:
    """Loss step of supervised training: label-smoothed cross-entropy of the model's logits."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        _, logits = model(images)
        return criterion(logits, labels)

    return step


def finished_history(model: nn.Module, checkpoint: str | Path, cfg: TrainConfig, *,
                     seed: int) -> list[dict] | None:
    """The history of a training of `cfg` that `checkpoint` holds finished, its weights loaded
    into `model` (where it is); None while there is training left to do. A caller checks this
    before preparing what only training needs (h's augmented features cost minutes)."""
    path = Path(checkpoint)
    if not path.exists():
        return None
    state = _checkpoint_state(path, cfg, seed)
    if state["epoch"] < cfg.epochs:
        return None
    model.load_state_dict(state["model"])
    return state["history"]


def _checkpoint_state(path: Path, cfg: TrainConfig, seed: int) -> dict:
    """A checkpoint's contents, refused when another config or seed wrote it."""
    state = load_torch(path)
    if state["config"] != asdict(cfg) or state["seed"] != seed:
        raise ValueError(
            f"checkpoint {path} was written with other settings ({state['config']}, seed "
            f"{state['seed']}); delete it or use another run folder to train with {asdict(cfg)}"
        )
    return state


def train(
    model: nn.Module,
    dataset: Dataset,
    loss_step: Callable[[nn.Module, object], torch.Tensor],
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    device: torch.device | None = None,
    on_epoch_start: Callable[[nn.Module, int], None] | None = None,
    on_batch_end: Callable[[int, int], None] | None = None,
    desc: str = "train",
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    h_fit: bool = False,
) -> list[dict]:
    """Train `model` in place and return per-epoch history; resumes from `checkpoint` if present,
    which is written at the end and at the first epoch end `checkpoint_every_s` after the last.
    `h_fit` says it fits an h, whose compile mode FCT_COMPILE_H may set apart (`compile_mode`).
    Under FCT_CPU_CHANNELS_LAST=1 a network that a CPU must not train channels-last
    (`narrow_strided_1x1_convolutions`) is refused before anything is trained.

    Each epoch draws its shuffling and augmentation from a seed derived from (seed, epoch), so a run
    resumed from the last finished epoch reproduces the uninterrupted one. Under torchrun each
    process takes its share of every batch and DDP averages the gradients (see `_RankShare`).
    A TensorDataset is moved to the device once and served in whole batches (`_TensorBatches`).
    """
    distributed.init_from_env()
    device = _process_device(device or default_device())
    if isinstance(dataset, TensorDataset):
        dataset = TensorDataset(*(t.to(device) for t in dataset.tensors))
    narrow = narrow_strided_1x1_convolutions(model) if device.type == "cpu" else []
    if narrow and channels_last(device):
        raise UserError(f"{desc}: FCT_CPU_CHANNELS_LAST=1 would train "
                        f"{channels_last_hazard(narrow)}: unset FCT_CPU_CHANNELS_LAST, or widen "
                        f"the network to {CPU_CHANNELS_LAST_MIN_CHANNELS} channels")
    model = prepare_model(model, device)
    optimizer = make_optimizer(model.parameters(), cfg)
    if distributed.is_distributed():
        _check_data_parallel(len(dataset), cfg.batch_size)
    loader_steps = len(_epoch_batches(dataset, cfg, seed, 0))
    scheduler = warmup_cosine(
        optimizer, cfg.epochs * loader_steps, cfg.warmup_epochs * loader_steps
    )
    history: list[dict] = []
    start_epoch = 0
    path = Path(checkpoint) if checkpoint else None
    if path and path.exists():
        state = _checkpoint_state(path, cfg, seed)
        model.load_state_dict(state["model"])
        history, start_epoch = state["history"], state["epoch"]
        if start_epoch < cfg.epochs:  # a finished model's file keeps no optimiser state
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
    # DDP shares the parameters of `model`, so the caller's model ends up trained. A finished run
    # is loaded without DDP, so one process alone may load it (e.g. to fill a cache).
    parallel = distributed.is_distributed() and start_epoch < cfg.epochs
    net = _data_parallel(model, device) if parallel else model
    step_loss = LossStep(loss_step, net, device, compile_mode(device, h_fit=h_fit))
    saved = time.perf_counter()

    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        if on_epoch_start:
            on_epoch_start(model, epoch)
        torch.manual_seed(_process_seed(derived_seed(seed, epoch, 1)))
        loader = _epoch_batches(dataset, cfg, seed, epoch)
        if isinstance(dataset, ImageBatches):
            loader = _augmented(dataset, loader, cfg, derived_seed(seed, epoch, 1), device)
        # The loss is summed on the device (in float64, as Python floats would) and read back
        # every LOSS_READ_EVERY steps only: reading it each step would wait for the GPU each step.
        running = torch.zeros((), dtype=torch.float64, device=device)
        count, started = 0, time.perf_counter()
        bar = progress(loader, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not distributed.is_main_process())
        for step, batch in enumerate(bar):
            batch = to_device(batch, device)
            loss = step_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            n = len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
            running += loss.detach().double() * n
            count += n
            if step % LOSS_READ_EVERY == 0:
                bar.set_postfix(
                    loss=f"{running.item() / count:.4f}",
                    items_s=f"{count / _elapsed(started):.0f}", refresh=False,
                )
            if on_batch_end:
                on_batch_end(epoch, step)
        total, count = distributed.sum_over_processes([running.item(), count])
        seconds = _elapsed(started)
        history.append({
            "epoch": epoch + 1, "loss": total / count, "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds, "items_per_s": count / seconds,
        })
        more = epoch + 1 < cfg.epochs
        due = not more or time.perf_counter() - saved >= checkpoint_every_s
        if path and due and distributed.is_main_process():
            # the optimiser's state serves only an epoch still to come: the finished model is
            # saved without it (Adam keeps two moments per weight, SGD's momentum one)
            save_torch({
                "model": model.state_dict(), "epoch": epoch + 1, "history": history,
                "config": asdict(cfg), "seed": seed,
                **({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
                   if more else {}),
            }, path)
            saved = time.perf_counter()
    if parallel:  # DDP keeps parameters in step; BatchNorm statistics drift apart per process
        distributed.broadcast_from_main(model.buffers())
    model.eval()
    return history


class _RankShare(Sampler[list[int]]):
    """This process's contiguous 1/world_size part of each batch of `batches`.

    The batches are those a single process trains on, so a run sees the same global batches
    whatever the number of processes (DistributedSampler would deal the samples out differently).
    """

    def __init__(self, batches: Iterable[list[int]], rank: int, world_size: int):
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            share = len(batch) // self.world_size
            yield batch[self.rank * share:(self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self.batches)


def _loader(dataset: Dataset, cfg: TrainConfig, seed: int, epoch: int) -> DataLoader:
    # The same sampler chain (and generator draws) as DataLoader(shuffle=True) builds itself.
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch, 0))
    batches = BatchSampler(RandomSampler(dataset, generator=generator), cfg.batch_size,
                           drop_last=len(dataset) > cfg.batch_size)
    worker_init = None
    if distributed.is_distributed():
        batches = _RankShare(batches, distributed.rank(), distributed.world_size())
        worker_init = functools.partial(_reseed_worker, rank=distributed.rank())
    return DataLoader(
        dataset, batch_sampler=batches, num_workers=cfg.num_workers, generator=generator,
        worker_init_fn=worker_init, persistent_workers=False, pin_memory=torch.cuda.is_available(),
    )


def _epoch_batches(dataset: Dataset, cfg: TrainConfig, seed: int, epoch: int) -> Iterable:
    """An epoch's batches: a TensorDataset indexed in whole batches, other datasets by `_loader`."""
    if isinstance(dataset, TensorDataset):
        indices = _index_batches(len(dataset), cfg, seed, epoch, dataset.tensors[0].device)
        return _TensorBatches(dataset.tensors, indices)
    return _loader(dataset, cfg, seed, epoch)


def _index_batches(
    samples: int, cfg: TrainConfig, seed: int, epoch: int, device: torch.device,
) -> list[torch.Tensor]:
    """The index batches `_loader` yields for `samples` items, drawn as one permutation tensor
    (put on `device`): the same generator draws, drop_last rule and share of this process."""
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch, 0))
    # A DataLoader's iterator draws its workers' base seed before the sampler's permutation.
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(samples, generator=generator).to(device)
    batches = list(order.split(cfg.batch_size))
    if samples > cfg.batch_size and len(batches[-1]) < cfg.batch_size:
        batches.pop()
    if distributed.is_distributed():
        return list(_RankShare(batches, distributed.rank(), distributed.world_size()))
    return batches


class _TensorBatches:
    """Batches of `tensors` (all on one device) taken by index batches: no per-item collation."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], indices: list[torch.Tensor]):
        self.tensors, self.indices = tensors, indices

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        for index in self.indices:
            yield [t.index_select(0, index) for t in self.tensors]

    def __len__(self) -> int:
        return len(self.indices)


def _augmented(images: ImageBatches, loader: DataLoader, cfg: TrainConfig, seed: int,
               device: torch.device):
    """The loader's index batches read from `images` and augmented on `device` (seeded per
    process), in place of per-item transforms in workers."""
    generator = torch.Generator(device).manual_seed(_process_seed(seed))
    return images.batches(loader.batch_sampler, device, generator, cfg.num_workers)


def _process_seed(seed: int) -> int:
    """`seed` itself in a single process; one seed per rank under torchrun, so that processes
    draw independent augmentations."""
    return derived_seed(seed, distributed.rank()) if distributed.is_distributed() else seed


def _reseed_worker(worker_id: int, rank: int) -> None:
    # DataLoader seeds worker k of every rank alike (base seed + k); give each rank its own.
    torch.manual_seed(derived_seed(torch.initial_seed(), rank))


def _check_data_parallel(samples: int, batch_size: int) -> None:
    world = distributed.world_size()
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over {world} processes; choose a "
            "batch size divisible by the number of processes (torchrun --nproc_per_node)"
        )
    if samples < batch_size:
        raise ValueError(
            f"data-parallel training needs at least batch_size ({batch_size}) samples, got "
            f"{samples}; lower the batch size or train in a single process"
        )


def _process_device(device: torch.device) -> torch.device:
    """The device of this process: under torchrun on CUDA, the GPU of its LOCAL_RANK."""
    if not (distributed.is_distributed() and device.type == "cuda"):
        return device
    own = torch.device("cuda", torch.cuda.current_device())
    if device.index not in (None, own.index):
        raise ValueError(
            f"device {device} given to rank {distributed.rank()}, whose GPU is {own}; pass "
            "torch.device('cuda') and let LOCAL_RANK choose the GPU"
        )
    return own


def _data_parallel(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def _elapsed(started: float) -> float:
    return max(time.perf_counter() - started, 1e-9)
