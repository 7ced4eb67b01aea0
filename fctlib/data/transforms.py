"""Image transforms (uint8 (C, H, W) tensor in, normalised float tensor out), channel stats."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2
from tqdm import tqdm

from fctlib.data.images import ArrayImages, ImageSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ExpectChannels:
    """Passes a (C, H, W) tensor through unchanged, refusing one with the wrong channel count."""

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 3 or image.shape[0] != self.channels:
            raise ValueError(
                f"transform built for {self.channels}-channel (C, H, W) images got shape "
                f"{tuple(image.shape)}; build it with channels={image.shape[0]} or convert images"
            )
        return image


def _check_args(image_size: int, channels: int, mean: Sequence[float], std: Sequence[float]):
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean and std need one value per channel ({channels}), got {len(mean)} and {len(std)}"
        )
    if min(std) <= 0:
        raise ValueError(f"std values must be > 0, got {tuple(std)}")


def _to_normalised_float(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def train_transform(
    image_size: int,
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    crop_padding: int | None = None,
    flip: bool = True,
) -> v2.Compose:
    """Resize to image_size square, random crop after zero padding (None: image_size // 8 px,
    0: no crop), random horizontal flip, then normalise with mean/std (values in [0, 1] units)."""
    _check_args(image_size, channels, mean, std)
    padding = image_size // 8 if crop_padding is None else crop_padding
    if padding < 0:
        raise ValueError(f"crop_padding must be >= 0 pixels, got {crop_padding}")
    steps = [_ExpectChannels(channels), v2.Resize((image_size, image_size), antialias=True)]
    if padding > 0:
        steps.append(v2.RandomCrop(image_size, padding=padding))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _to_normalised_float(mean, std))


def eval_transform(
    image_size: int, channels: int, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """Resize to image_size square and normalise with mean/std; deterministic."""
    _check_args(image_size, channels, mean, std)
    return v2.Compose(
        [_ExpectChannels(channels), v2.Resize((image_size, image_size), antialias=True)]
        + _to_normalised_float(mean, std)
    )


class TwoViews:
    """Maps one image to a tuple of two independently augmented views (SimCLR's positive pair)."""

    def __init__(self, view: v2.Compose):
        """`view` is the random transform applied twice."""
        self.view = view

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(view(image), view(image)) with independent randomness."""
        return self.view(image), self.view(image)


def simclr_transform(
    image_size: int, channels: int, mean: Sequence[float], std: Sequence[float]
) -> TwoViews:
    """SimCLR pair: random resized crop (scale 0.2-1), flip, colour jitter (p=0.8; brightness and
    contrast only for gray) and random grayscale (p=0.2, RGB only), normalised."""
    _check_args(image_size, channels, mean, std)
    steps = [
        _ExpectChannels(channels),
        v2.RandomResizedCrop(image_size, scale=(0.2, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if channels == 3:
        steps += [
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ]
    else:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8))
    return TwoViews(v2.Compose(steps + _to_normalised_float(mean, std)))


def channel_stats(
    images: ImageSet, max_images: int | None = None, seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel pixel mean and std (population) in [0, 1] units over `images`, or over a seeded
    random sample of at most `max_images` of them (for large sets decoded from files)."""
    n = len(images)
    if n == 0:
        raise ValueError("channel_stats needs at least one image, got an empty set")
    if max_images is not None and max_images < n:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))
        images = images.subset(rows)
    histogram = torch.zeros(images.channels, 256, dtype=torch.int64)
    for batch in _pixel_batches(images):
        for c in range(images.channels):
            histogram[c] += torch.bincount(batch[:, c].reshape(-1), minlength=256)
    # exact integer moments from the histogram: the result does not depend on batch order
    levels = torch.arange(256, dtype=torch.int64)
    count = histogram.sum(dim=1).double()
    mean = (histogram * levels).sum(dim=1).double() / count
    var = (histogram * levels.square()).sum(dim=1).double() / count - mean.square()
    return tuple((mean / 255.0).tolist()), tuple((var.clamp_min(0.0).sqrt() / 255.0).tolist())


def _pixel_batches(images: ImageSet, batch: int = 1024):
    """uint8 (B, C, H, W) batches: slices of an ArrayImages, single images of any other set."""
    if isinstance(images, ArrayImages):
        for start in range(0, len(images), batch):
            yield images.images[start : start + batch]
    else:
        for i in tqdm(range(len(images)), desc="pixel statistics", unit="img", mininterval=2.0):
            yield images.image(i).unsqueeze(0)
