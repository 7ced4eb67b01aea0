"""Image sets served as augmented batches on the training device: decoded once into a uint8
tensor (or, when too large for memory, decoded by DataLoader workers), transformed batch-wise."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from fctlib.data.images import ArrayImages, FileImages, ImageSet
from fctlib.data.spec import DATA_PATHS
from fctlib.data.transforms import BatchTransform
from fctlib.progress import progress

MEMORY_SHARE = 0.25  # `auto` decodes into memory a set taking at most this share of the RAM


def decoded_size(images: ImageSet, image_size: int) -> int:
    """Bytes of `images` decoded to uint8 at image_size square."""
    return len(images) * images.channels * image_size * image_size


def fits_in_memory(images: ImageSet, image_size: int) -> bool:
    """Whether the decoded set takes at most MEMORY_SHARE of this machine's RAM."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return decoded_size(images, image_size) <= MEMORY_SHARE * ram


def decode_all(images: ImageSet, image_size: int) -> torch.Tensor:
    """Every image as one uint8 (N, C, H, W) tensor; files resized to image_size square."""
    if isinstance(images, ArrayImages):
        return images.images
    if isinstance(images, FileImages):
        return images.to_arrays(image_size).images
    rows = progress(range(len(images)), desc="decoding images", unit="img", mininterval=2.0)
    return torch.stack([images.image(i) for i in rows])


def held_in_memory(images: ImageSet, image_size: int, path: str, cache_dir: Path) -> ImageSet:
    """`images` as ArrayImages when `path` is memory (auto: when they fit), files decoded once
    through a .npy cache in `cache_dir` keyed by their paths, sizes and modification times (a
    file changed in place is decoded again); else `images` as they are."""
    if path not in DATA_PATHS:
        raise ValueError(f"path must be one of {DATA_PATHS}, got {path!r}")
    if not isinstance(images, FileImages) or path == "stream" or (
            path == "auto" and not fits_in_memory(images, image_size)):
        return images
    stats = [(p.resolve(), p.stat()) for p in images.paths]
    files = "\n".join(f"{path}\t{st.st_size}\t{st.st_mtime_ns}" for path, st in stats)
    key = hashlib.sha256(files.encode()).hexdigest()[:16]
    cache = Path(cache_dir) / "decoded" / f"files-{key}-{image_size}px-{images.channels}ch.npy"
    return images.to_arrays(image_size, cache)


class ImageBatches:
    """An image set with a batch transform: `batches` yields (transformed images, labels, rows)
    on a device, or the transform's output alone when `labels` is False (labels never read)."""

    def __init__(self, images: ImageSet, transform: BatchTransform, *, labels: bool = True,
                 path: str = "auto"):
        """`transform` maps a uint8 (B, C, H, W) batch and a generator to the model's input;
        `path`: memory (decode once), stream (workers decode each batch) or auto (by RAM); a
        set already in memory (ArrayImages) is served from memory."""
        if path not in DATA_PATHS:
            raise ValueError(f"path must be one of {DATA_PATHS}, got {path!r}")
        self.images, self.transform, self.labels = images, transform, labels
        size = transform.image_size
        in_memory = isinstance(images, ArrayImages) or path == "memory" or (
            path == "auto" and fits_in_memory(images, size))
        self.path = "memory" if in_memory else "stream"
        self._decoded = decode_all(images, size) if in_memory else None
        self._resident: tuple[torch.device, torch.Tensor] | None = None

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)

    def batches(self, index_batches: Iterable[list[int]], device: torch.device,
                generator: torch.Generator | None = None, num_workers: int = 0) -> _Served:
        """The batches of rows `index_batches`, transformed on `device` with draws from
        `generator`; streamed sets are decoded by `num_workers` DataLoader workers."""
        return _Served(self, index_batches, device, generator, num_workers)

    def _uint8_batches(self, index_batches, device, num_workers) -> Iterator[tuple]:
        if self._decoded is not None:
            stored = self._on(device)
            for rows in index_batches:
                rows = torch.as_tensor(rows, dtype=torch.int64)
                yield stored[rows.to(stored.device)].to(device, non_blocking=True), rows
            return
        loader = DataLoader(_Decoding(self.images, self.transform.image_size),
                            batch_sampler=index_batches, num_workers=num_workers,
                            pin_memory=device.type == "cuda")
        for images, rows in loader:
            yield images.to(device, non_blocking=True), rows

    def _on(self, device: torch.device) -> torch.Tensor:
        """The decoded tensor on `device` when it takes at most a quarter of the device's free
        memory (a GPU), else in CPU memory (batches are copied over one by one)."""
        if self._resident is None or self._resident[0] != device:
            stored = self._decoded
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                if stored.numel() <= free / 4:
                    stored = stored.to(device)
            self._resident = (device, stored)
        return self._resident[1]


class _Served:
    """A sized iterable of transformed batches (one per index batch)."""

    def __init__(self, source: ImageBatches, index_batches, device, generator, num_workers):
        self.source, self.index_batches = source, index_batches
        self.device, self.generator, self.num_workers = device, generator, num_workers

    def __len__(self) -> int:
        return len(self.index_batches)

    def __iter__(self) -> Iterator:
        source = self.source
        labels = torch.from_numpy(source.images.labels) if source.labels else None
        for images, rows in source._uint8_batches(self.index_batches, self.device,
                                                  self.num_workers):
            out = source.transform(images, self.generator)
            if labels is None:
                yield out
            else:
                yield out, labels[rows].to(self.device, non_blocking=True), rows


class _Decoding(Dataset):
    """(uint8 image, row) of a set that stays on disk; files are resized to `size` square as
    `FileImages.to_arrays` does."""

    def __init__(self, images: ImageSet, size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if isinstance(self.images, FileImages):
            return self.images.resized_image(i, self.size), i
        return self.images.image(i), i
