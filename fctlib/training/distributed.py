"""Data-parallel runs under torchrun: the process group its environment describes, and helpers."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
from torch import distributed as dist

# Rank 0 may fill a cache (say, embeddings of a training set) while the others wait at a barrier,
# which takes longer than torch's default collective timeout (10 minutes with NCCL).
DEFAULT_TIMEOUT = timedelta(hours=2)
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def init_from_env(timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Join the process group that torchrun's environment describes when WORLD_SIZE > 1 (NCCL on
    CUDA, gloo on CPU); return whether the run is distributed. Idempotent."""
    if dist.is_available() and dist.is_initialized():
        return True
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch data-parallel runs with "
            "`torchrun --nproc_per_node=N ...`, or unset WORLD_SIZE for a single process"
        )
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return True


def shutdown() -> None:
    """Leave the process group (a no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """Number of processes of the run (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_distributed() -> bool:
    """True when this process is one of several in a process group."""
    return world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, the process that writes files and shows progress."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (a no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def sum_over_processes(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over all processes (the values themselves in one process)."""
    if not is_distributed():
        return list(values)
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_from_main(tensors) -> None:
    """Overwrite each tensor in place with rank 0's values (a no-op in a single process)."""
    if is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


@contextlib.contextmanager
def main_process_first():
    """Run the body on rank 0 first, then on the other ranks (e.g. rank 0 fills a cache that the
    others then read)."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()
