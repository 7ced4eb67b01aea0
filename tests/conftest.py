import os

import pytest
import torch

from fctlib.data.sources import load_dataset
from fctlib.data.spec import DatasetSpec
from fctlib.training.runtime import set_cpu_threads

set_cpu_threads()  # from the first test on, the threads every `Run` sets (torch may pick others)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST bundle (Debian package files); skipped where it is not installed."""
    try:
        return load_dataset(DatasetSpec(name="fashion-mnist", download=False))
    except FileNotFoundError as missing:
        pytest.skip(f"Fashion-MNIST not installed (see `make data`): {missing}")


@pytest.fixture(scope="session")
def smoke_run(fashion_mnist, tmp_path_factory):
    """A Run of the smoke preset (seed 0, CPU) whose cached steps live in a temporary folder."""
    from fctlib.suite.run import Run

    base = tmp_path_factory.mktemp("smoke-run")
    return Run("smoke", 0, runs_dir=base / "runs", results_dir=base / "results",
               device=torch.device("cpu"))


# Environment variables that steer the arithmetic of later work in this process (threads, kernels,
# fctlib's switches): a test must leave them as it found them (monkeypatch does).
STEERING_PREFIXES = ("FCT_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "ATEN_", "ONEDNN_", "DNNL_")


def _steering_state() -> dict:
    return {"torch threads": torch.get_num_threads(),
            **{k: v for k, v in os.environ.items() if k.startswith(STEERING_PREFIXES)}}


@pytest.fixture(autouse=True)
def leaves_the_process_as_it_found_it():
    """Fail a test that changes torch's thread count or a steering environment variable for the
    tests after it: dask's nannies once set OMP_NUM_THREADS=1 in this process, every later `Run`
    trained on one thread and the compiled-vs-eager losses moved only inside the whole run."""
    before = _steering_state()
    yield
    after = _steering_state()
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
               if before.get(k) != after.get(k)}
    assert not changed, f"left changed for later tests (before, after): {changed}"
