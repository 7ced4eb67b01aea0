import pytest

from fctlib.datasets import DatasetSpec, load_dataset


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST bundle (Debian package files); skipped where it is not installed."""
    try:
        return load_dataset(DatasetSpec(name="fashion-mnist", download=False))
    except FileNotFoundError as missing:
        pytest.skip(f"Fashion-MNIST not installed (see `make data`): {missing}")
