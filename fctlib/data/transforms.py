"""Batched image transforms: a uint8 (B, C, H, W) batch on any device in, a normalised float
batch out, with independent random parameters per sample; channel statistics."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from fctlib.data.images import ArrayImages, ImageSet
from fctlib.progress import progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


class BatchTransform(ABC):
    """Maps a uint8 (B, C, H, W) batch to normalised float32 images of `image_size` square."""

    def __init__(self, image_size: int, channels: int, mean: Sequence[float],
                 std: Sequence[float]):
        _check_args(image_size, channels, mean, std)
        self.image_size, self.channels = image_size, channels
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    @abstractmethod
    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """The transformed batch; random parameters are drawn from `generator` (on the batch's
        device; None: torch's default generator of that device)."""

    def _checked(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(
                f"transform built for uint8 {self.channels}-channel (B, C, H, W) batches got "
                f"{images.dtype} of shape {tuple(images.shape)}; build it with the images' "
                "channel count or convert the images"
            )
        return images

    def _resized(self, images: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        images = self._checked(images)
        if tuple(images.shape[-2:]) != (size, size):
            images = TF.resize(images, [size, size], antialias=True)
        return images

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = TF.to_dtype(images, torch.float32, scale=True)
        return TF.normalize(images, self.mean, self.std)


class EvalTransform(BatchTransform):
    """Resize to image_size square and normalise with mean/std; deterministic."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """The resized, normalised batch (`generator` is not used)."""
        return self._normalised(self._resized(images))


class CropFlipTransform(BatchTransform):
    """Resize to image_size square, random crop after zero padding (None: image_size // 8 px,
    0: no crop), random horizontal flip (p=0.5), then normalise; each sample draws its own."""

    def __init__(self, image_size: int, channels: int, mean: Sequence[float],
                 std: Sequence[float], *, crop_padding: int | None = None, flip: bool = True):
        super().__init__(image_size, channels, mean, std)
        self.padding = image_size // 8 if crop_padding is None else crop_padding
        if self.padding < 0:
            raise ValueError(f"crop_padding must be >= 0 pixels, got {crop_padding}")
        self.flip = flip

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """The augmented, normalised batch."""
        images = self._resized(images)
        batch, channels, size, pad = len(images), self.channels, self.image_size, self.padding
        device = images.device
        offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
        flips = torch.rand(batch, generator=generator, device=device) < 0.5
        if not self.flip:
            flips = torch.zeros_like(flips)
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        steps = torch.arange(size, device=device)
        rows = offsets[0, :, None] + steps
        cols = offsets[1, :, None] + torch.where(flips[:, None], size - 1 - steps, steps)
        width = padded.shape[-1]
        picked = padded.gather(2, rows[:, None, :, None].expand(batch, channels, size, width))
        cropped = picked.gather(3, cols[:, None, None, :].expand(batch, channels, size, size))
        return self._normalised(cropped)


class SimCLRTransform(BatchTransform):
    """SimCLR's pair of views: random resized crop (scale 0.2-1, aspect 3/4-4/3), flip, colour
    jitter (p=0.8; brightness and contrast only for gray) and grayscale (p=0.2, RGB only)."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """(view 1, view 2): two independently augmented, normalised views of the batch."""
        images = TF.to_dtype(self._checked(images), torch.float32, scale=True)
        return self._view(images, generator), self._view(images, generator)

    def _view(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, device = len(images), images.device

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return torch.rand(shape or (batch,), generator=generator, device=device) * (
                high - low) + low

        boxes = _random_crop_boxes(batch, images.shape[-2], images.shape[-1], uniform)
        indices = torch.arange(batch, device=device, dtype=images.dtype)[:, None]
        x = roi_align(images, torch.cat([indices, boxes], dim=1), self.image_size,
                      sampling_ratio=-1, aligned=True)
        flips = uniform(0, 1) < 0.5
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        jittered = uniform(0, 1) < 0.8
        if self.channels == 3:
            strengths = [(0.4, 1.0), (0.4, 1.0), (0.4, 1.0), (0.1, 0.0)]
            ops = [_brightness, _contrast, _saturation, _hue]
        else:
            strengths, ops = [(0.4, 1.0), (0.4, 1.0)], [_brightness, _contrast]
        # a factor of 1 (hue: 0) leaves an image as it is: the 20% without jitter get those
        factors = [torch.where(jittered, uniform(identity - s, identity + s), identity)
                   for s, identity in strengths]
        order = torch.rand(batch, len(ops), generator=generator, device=device).argsort(dim=1)
        x = _jitter(x, ops, factors, order, select_rows=device.type == "cpu")
        if self.channels == 3:
            gray = uniform(0, 1) < 0.2
            x = torch.where(gray[:, None, None, None], _gray(x).expand_as(x), x)
        return self._normalised(x)


def _jitter(x: torch.Tensor, ops: list, factors: list[torch.Tensor], order: torch.Tensor, *,
            select_rows: bool) -> torch.Tensor:
    """Each sample's jitter ops in its own order (`order[i]`: sample i's op indices, slot by
    slot). `select_rows` runs each op on the rows that apply it at that slot, the least work (a
    CPU's choice); otherwise each op runs on the whole batch and those rows keep its result,
    which an accelerator does without waiting: selecting rows (`nonzero`) waits for the device at
    every op, 32 times a batch. Both give the same numbers up to rounding
(tests/data/test_transforms.py)."""
    for slot in range(len(ops)):
        for op_index, (op, factor) in enumerate(zip(ops, factors, strict=True)):
            chosen = order[:, slot] == op_index
            if select_rows:
                rows = chosen.nonzero().squeeze(1)
                x[rows] = op(x[rows], factor[rows])
            else:
                x = torch.where(chosen[:, None, None, None], op(x, factor), x)
    return x


def _random_crop_boxes(batch: int, height: int, width: int, uniform, tries: int = 10
                       ) -> torch.Tensor:
    """(B, 4) boxes x1, y1, x2, y2: per sample the first of `tries` (area share, aspect) draws
    that fits the image, else the whole image."""
    share = uniform(0.2, 1.0, batch, tries)
    aspect = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3), batch, tries))
    w = torch.sqrt(height * width * share * aspect)
    h = torch.sqrt(height * width * share / aspect)
    fits = (w <= width) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)
    found = fits.any(dim=1)
    w = torch.where(found, w.gather(1, first).squeeze(1), float(width))
    h = torch.where(found, h.gather(1, first).squeeze(1), float(height))
    x1, y1 = uniform(0, 1) * (width - w), uniform(0, 1) * (height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor[:, None, None, None]


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of RGB (ITU-R 601-2 weights); a gray batch as it is."""
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor)
    return (f * x + (1 - f) * other).clamp(0, 1)


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor)).clamp(0, 1)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x), factor)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)  # here, once: inverting on a GPU waits for it


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue turned by `shift` of a full turn: a rotation of the chroma plane (I, Q) in YIQ."""
    to_yiq, to_rgb = _RGB_TO_YIQ.to(x.device, x.dtype), _YIQ_TO_RGB.to(x.device, x.dtype)
    angle = 2 * math.pi * shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    matrix = to_rgb @ rotation @ to_yiq
    return torch.einsum("bij,bjhw->bihw", matrix, x).clamp(0, 1)


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
        for i in progress(range(len(images)), desc="pixel statistics", unit="img", mininterval=2.0):
            yield images.image(i).unsqueeze(0)
