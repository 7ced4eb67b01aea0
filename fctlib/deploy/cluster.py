"""Dask clusters for shard-parallel jobs: connect to a running scheduler or start a local one."""

from __future__ import annotations

import contextlib
import os

from fctlib.errors import UserError

CONNECT_TIMEOUT_S = 5  # a scheduler that does not answer within this is reported, not waited on


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A dask.distributed Client: of the scheduler at `scheduler` (e.g. tcp://host:8786), else of
    a local cluster of `workers` processes with one thread each."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except OSError as err:
            raise UserError(f"no Dask scheduler answers at --scheduler {scheduler} within "
                            f"{CONNECT_TIMEOUT_S} s ({err}); start one there (`dask scheduler`), "
                            "fix the address, or use --workers N for a local cluster") from None
        with client:
            yield client
        return
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}; pass e.g. --workers 2")
    with _environment_restored(), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _environment_restored():
    """This process's environment as it was, after the block: a local cluster's nannies set their
    workers' variables (OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, distributed's pre-spawn-environ) in
    the process that starts them, where a later `Run` would then train on one thread."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        os.environ.update((name, value) for name, value in before.items()
                          if os.environ.get(name) != value)


def threads_per_worker(workers: int | None) -> int | None:
    """torch threads for each of `workers` local processes, sharing this machine's cores."""
    return None if not workers else max(1, (os.cpu_count() or 1) // workers)
