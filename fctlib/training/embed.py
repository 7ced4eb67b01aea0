"""Embedding extraction: run one or several models over an image set in one pass."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, SequentialSampler

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ImageSet
from fctlib.data.transforms import BatchTransform
from fctlib.progress import progress
from fctlib.training.runtime import (
    autocast,
    default_device,
    embed_batch_size,
    prepare_model,
    to_device,
)


@torch.no_grad()
def embed(
    models: nn.Module | Sequence[nn.Module],
    images: ImageSet,
    transform: BatchTransform,
    *,
    batch_size: int | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    desc: str = "embed",
) -> np.ndarray | list[np.ndarray]:
    """Embeddings (N, d) float32 of every image, in order; a list of arrays for a list of models.

    Batches of the decoded images are transformed on `device`; all models see the same batch,
    so a random `transform` (augmented views) gives matching features, reproducible by `seed`.
    batch_size: images per forward pass (None: `embed_batch_size` of the device).
    """
    single = isinstance(models, nn.Module)
    models = [models] if single else list(models)
    device = device or default_device()
    models = [prepare_model(m, device).eval() for m in models]
    batch_size = batch_size or embed_batch_size(device)
    rows = BatchSampler(SequentialSampler(range(len(images))), batch_size, drop_last=False)
    generator = torch.Generator(device).manual_seed(seed)
    batches = ImageBatches(images, transform, labels=False).batches(rows, device, generator)
    outputs: list[list[np.ndarray]] = [[] for _ in models]
    for x in progress(batches, desc=desc, leave=False):
        x = to_device(x, device)  # channels-last where the device's layout is
        with autocast(device):
            for out, model in zip(outputs, models, strict=True):
                y = model(x)
                y = y[0] if isinstance(y, tuple) else y
                out.append(y.float().cpu().numpy())
    dims = [m_out[0].shape[1] if m_out else 0 for m_out in outputs]
    arrays = [
        np.concatenate(o) if o else np.zeros((0, d), np.float32)
        for o, d in zip(outputs, dims, strict=True)
    ]
    return arrays[0] if single else arrays
