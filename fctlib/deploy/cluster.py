"""Dask clusters for shard-parallel jobs: connect to a running scheduler or start a local one."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A dask.distributed Client: of the scheduler at `scheduler` (e.g. tcp://host:8786), or of
    a local cluster of `workers` processes with one thread each; None when neither is given."""
    if workers is None and scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def threads_per_worker(workers: int | None) -> int | None:
    """torch threads for each of `workers` local processes, sharing this machine's cores."""
    return None if not workers else max(1, (os.cpu_count() or 1) // workers)
