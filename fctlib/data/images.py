"""Image sets: in memory as one uint8 tensor, or as files on disk decoded on demand."""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fctlib.io import save_npy_atomic
from fctlib.progress import progress

_PIL_MODES = {1: "L", 3: "RGB"}


def _as_labels(labels, n: int | None = None) -> np.ndarray:
    """Labels as a fresh (N,) int64 array of non-negative class ids; ValueError otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
            raise ValueError(f"labels must be integer class ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=True)
    if n is not None and len(arr) != n:
        raise ValueError(f"got {n} images but {len(arr)} labels; they must match one to one")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels must be class ids >= 0, got minimum {arr.min()}")
    return arr


def _as_indices(indices, n: int) -> np.ndarray:
    """Row indices as an int64 array, each in [0, n); boolean masks are not accepted."""
    idx = np.asarray(indices)
    if idx.dtype == bool:
        raise ValueError("subset takes row indices, not a boolean mask; use np.flatnonzero(mask)")
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"subset indices must be 1-D ints, got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= n:
        raise IndexError(f"subset indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


class ImageSet(ABC):
    """Images with class labels: `image(i)` is a uint8 (C, H, W) tensor, `labels[i]` its class."""

    labels: np.ndarray
    channels: int

    def __len__(self) -> int:
        """Number of images."""
        return len(self.labels)

    @abstractmethod
    def image(self, i: int) -> torch.Tensor:
        """The i-th image as a uint8 (C, H, W) tensor."""

    @abstractmethod
    def subset(self, indices) -> ImageSet:
        """The same kind of set holding rows `indices` (in that order), re-indexed 0..len-1."""

    @abstractmethod
    def with_labels(self, labels) -> ImageSet:
        """The same images (shared, not copied) carrying new `labels`, one per image."""

    @abstractmethod
    def digest(self) -> str:
        """A hash of what the set holds and its labels, the same wherever its files are."""

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image index {i} out of range for a set of {n} images")
        return i % n


class ArrayImages(ImageSet):
    """Images held in memory as one uint8 tensor `images` of shape (N, C, H, W)."""

    def __init__(self, images: torch.Tensor | np.ndarray, labels, layout: str | None = None):
        """Wrap uint8 images laid out NHW (gray), NHWC or NCHW; `layout` settles ambiguous ones."""
        data = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
        if data.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {data.dtype}; convert first")
        self.images = _to_nchw(data, layout).contiguous()
        self.labels = _as_labels(labels, self.images.shape[0])
        self.channels = int(self.images.shape[1])

    def image(self, i: int) -> torch.Tensor:
        """The i-th image as a uint8 (C, H, W) tensor (a view into `images`)."""
        return self.images[self._check_index(i)]

    def subset(self, indices) -> ArrayImages:
        """An ArrayImages holding copies of rows `indices`."""
        idx = _as_indices(indices, len(self))
        return ArrayImages(self.images[torch.from_numpy(idx)], self.labels[idx], layout="NCHW")

    def with_labels(self, labels) -> ArrayImages:
        """An ArrayImages sharing this one's image tensor, with new `labels`."""
        return ArrayImages(self.images, labels, layout="NCHW")

    def digest(self) -> str:
        """A hash of the pixels (N, C, H, W), in order, and the labels."""
        h = hashlib.sha256(f"arrays {tuple(self.images.shape)};".encode())
        h.update(memoryview(self.images.numpy()))  # contiguous (see __init__)
        h.update(memoryview(self.labels))
        return h.hexdigest()

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) shared by every image."""
        return int(self.images.shape[2]), int(self.images.shape[3])


def _to_nchw(data: torch.Tensor, layout: str | None) -> torch.Tensor:
    """Reorder NHW / NHWC / NCHW uint8 images to NCHW, inferring the layout when not given."""
    if layout is None:
        if data.ndim == 3:
            layout = "NHW"
        elif data.ndim == 4:
            first, last = data.shape[1] in (1, 3), data.shape[3] in (1, 3)
            if first and last:
                raise ValueError(
                    f"images of shape {tuple(data.shape)} could be NCHW or NHWC; "
                    "pass layout='NCHW' or layout='NHWC'"
                )
            if not first and not last:
                raise ValueError(
                    f"images of shape {tuple(data.shape)} have no channel axis of size 1 or 3; "
                    "expected NHW, NHWC or NCHW with 1 (gray) or 3 (RGB) channels"
                )
            layout = "NCHW" if first else "NHWC"
        else:
            raise ValueError(
                f"images must be 3-D (NHW) or 4-D (NHWC or NCHW), got shape {tuple(data.shape)}"
            )
    expected_ndim = {"NHW": 3, "NHWC": 4, "NCHW": 4}
    if layout not in expected_ndim:
        raise ValueError(f"layout must be one of {sorted(expected_ndim)}, got {layout!r}")
    if data.ndim != expected_ndim[layout]:
        raise ValueError(f"layout {layout} needs {expected_ndim[layout]}-D images, got shape "
                         f"{tuple(data.shape)}")
    if layout == "NHW":
        data = data.unsqueeze(1)
    elif layout == "NHWC":
        data = data.permute(0, 3, 1, 2)
    if data.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {data.shape[1]} ({layout})")
    return data


class FileImages(ImageSet):
    """Image files on disk (any format PIL reads), decoded lazily and converted to `channels`."""

    def __init__(self, paths: Sequence[str | Path], labels, channels: int = 3):
        """Images at `paths` with classes `labels`, decoded to 1 (gray) or 3 (RGB) channels."""
        if channels not in _PIL_MODES:
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
        self.paths = [p if isinstance(p, Path) else Path(p) for p in paths]
        self.labels = _as_labels(labels, len(self.paths))
        self.channels = channels

    def image(self, i: int) -> torch.Tensor:
        """Decode the i-th file into a uint8 (C, H, W) tensor."""
        return _pil_to_tensor(self._open(self._check_index(i)))

    def subset(self, indices) -> FileImages:
        """A FileImages over files `indices`."""
        idx = _as_indices(indices, len(self))
        return FileImages([self.paths[j] for j in idx], self.labels[idx], self.channels)

    def with_labels(self, labels) -> FileImages:
        """A FileImages over the same files, with new `labels`."""
        return FileImages(self.paths, labels, self.channels)

    def digest(self) -> str:
        """A hash of the files' paths below their common folder and their sizes, in order, the
        channels they decode to and the labels: the names, sizes and classes of the files, not
        their bytes (keying a run would otherwise read the whole data set first, ImageNet's
        140 GB), so a file rewritten in place changes it unless its size stays the same (as an
        uncompressed format's would)."""
        folder = os.path.commonpath([str(p.parent) for p in self.paths]) if self.paths else ""
        h = hashlib.sha256(f"files {self.channels};".encode())
        for path in self.paths:
            h.update(f"{os.path.relpath(path, folder)}\0{path.stat().st_size}\0".encode())
        h.update(memoryview(self.labels))
        return h.hexdigest()

    def to_arrays(self, size: int, cache_path: Path | None = None) -> ArrayImages:
        """Decode every file once, resized to size x size, into memory; reuse/write a .npy cache
        (trusted when its shape matches, so key `cache_path` by the file list it stands for)."""
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        shape = (len(self), self.channels, size, size)
        if cache_path is not None and Path(cache_path).exists():
            cached = np.load(cache_path)
            if cached.shape == shape and cached.dtype == np.uint8:
                return ArrayImages(torch.from_numpy(cached), self.labels, layout="NCHW")
        out = decode_in_processes(self, size)
        if cache_path is not None:
            save_npy_atomic(out, Path(cache_path))
        return ArrayImages(torch.from_numpy(out), self.labels, layout="NCHW")

    def resized_image(self, i: int, size: int) -> torch.Tensor:
        """Decode the i-th file resized (bilinear) to size x size, as a uint8 (C, H, W) tensor."""
        return torch.from_numpy(self.resized_array(i, size))

    def resized_array(self, i: int, size: int) -> np.ndarray:
        """`resized_image` as a NumPy array (what decoding processes fill in without torch)."""
        img = self._open(self._check_index(i))
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return _pil_to_array(img)

    def _open(self, i: int) -> Image.Image:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                return img.convert(_PIL_MODES[self.channels])
        except FileNotFoundError:
            msg = f"image file {path} is missing (was the data set moved?)"
            raise FileNotFoundError(msg) from None
        except OSError as err:
            raise OSError(f"cannot decode image file {path}: {err}; replace or delete that file "
                          "(or extract the data set's archive again)") from err


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image in mode L or RGB as a uint8 (C, H, W) tensor."""
    return torch.from_numpy(_pil_to_array(img))


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A PIL image in mode L or RGB as a writable uint8 (C, H, W) array."""
    arr = np.asarray(img, dtype=np.uint8)
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.array(chw, order="C")  # a writable copy


# Images one decoding process takes at a time: small enough to share the work out evenly, large
# enough that handing out tasks costs nothing beside decoding them (about 0.1 ms per 64 px JPEG).
DECODE_CHUNK = 256
_decoding: tuple[FileImages, int, np.ndarray] | None = None  # a decoding process's work


def decode_in_processes(images: FileImages, size: int) -> np.ndarray:
    """Every image of `images` decoded and resized (`resized_array`) into one (N, C, size, size)
    uint8 array, by as many forked processes as torch may use threads (`torch.get_num_threads()`,
    which a run sets to its CPUs; one: in this process). Pillow's decoding holds Python's lock for
    most of a small JPEG's time, so threads do not help (0.82x on 2 cores); processes write
    straight into memory shared with this one. Each image is decoded alone, so the array is the
    same whatever the number of processes."""
    shape = (len(images), images.channels, size, size)
    chunks = [range(start, min(start + DECODE_CHUNK, len(images)))
              for start in range(0, len(images), DECODE_CHUNK)]
    workers = min(torch.get_num_threads(), len(chunks))
    desc = f"decoding images to {size}px"
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        out = np.empty(shape, dtype=np.uint8)
        for i in progress(range(len(images)), desc=desc, unit="img", mininterval=2.0):
            out[i] = images.resized_array(i, size)
        return out
    # anonymous shared memory: what forked processes write into it, this one reads
    out = np.frombuffer(mmap.mmap(-1, int(np.prod(shape))), np.uint8).reshape(shape)
    context = multiprocessing.get_context("fork")  # inherits `images` and `out`, nothing pickled
    with context.Pool(workers, initializer=_take_decoding, initargs=(images, size, out)) as pool:
        for _ in progress(pool.imap_unordered(_decode_chunk, chunks), total=len(chunks),
                          desc=desc, unit="chunk", mininterval=2.0):
            pass
    return out


def _take_decoding(images: FileImages, size: int, out: np.ndarray) -> None:
    global _decoding
    _decoding = (images, size, out)


def _decode_chunk(rows: range) -> None:
    images, size, out = _decoding
    for i in rows:
        out[i] = images.resized_array(i, size)
