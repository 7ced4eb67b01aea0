import pytest

from fctlib.data.sources import load_dataset
from fctlib.data.spec import DatasetSpec


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
    import torch

    from fctlib.suite.run import Run

    base = tmp_path_factory.mktemp("smoke-run")
    return Run("smoke", 0, runs_dir=base / "runs", results_dir=base / "results",
               device=torch.device("cpu"))
