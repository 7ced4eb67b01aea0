"""Tests of fctlib.training.embed: every image in order, whatever the batch size."""

import numpy as np
import torch

from fctlib.data.images import ArrayImages
from fctlib.data.transforms import EvalTransform
from fctlib.experiment.config import load_preset
from fctlib.models.backbones import build_model
from fctlib.training.embed import embed
from fctlib.training.runtime import embed_batch_size

MEAN, STD = (0.29,), (0.35,)


def images_and_models(n=300):
    rng = np.random.default_rng(0)
    images = ArrayImages(rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), np.arange(n) % 10)
    preset = load_preset("fashion-mnist")
    torch.manual_seed(0)
    models = [build_model(preset.old.model, 1, 5), build_model(preset.new.model, 1, 10)]
    return images, models


def test_embed_is_the_models_forward_pass_in_order():
    images, models = images_and_models()
    transform = EvalTransform(28, 1, MEAN, STD)
    old, new = embed(models, images, transform, batch_size=64)  # 4 full batches and a rest of 44
    with torch.no_grad():
        x = transform(images.images)
        expected = [m.eval()(x)[0].numpy() for m in models]
    assert old.shape == (300, 16) and new.shape == (300, 16)
    np.testing.assert_allclose(old, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new, expected[1], rtol=1e-5, atol=1e-6)
    assert isinstance(embed(models[0], images, transform), np.ndarray)


def test_embeddings_do_not_depend_on_the_batch_size():
    images, models = images_and_models()
    transform = EvalTransform(28, 1, MEAN, STD)
    default = embed(models[1], images, transform)  # embed_batch_size: 128 on a CPU
    assert embed_batch_size(torch.device("cpu")) == 128
    for batch_size in (1, 7, 300, 512):
        np.testing.assert_allclose(embed(models[1], images, transform, batch_size=batch_size),
                                   default, rtol=1e-5, atol=1e-6)


def test_channels_last_embeddings_are_the_channels_first_ones(monkeypatch):
    """FCT_CPU_CHANNELS_LAST=1 runs the same convolutions through other kernels: the same
    embeddings up to float32 rounding of sums over at most 576 terms (rtol/atol as above, x10)."""
    images, models = images_and_models()
    transform = EvalTransform(28, 1, MEAN, STD)
    monkeypatch.delenv("FCT_CPU_CHANNELS_LAST", raising=False)
    first = embed(models, images, transform)
    monkeypatch.setenv("FCT_CPU_CHANNELS_LAST", "1")
    last = embed(models, images, transform)
    assert models[1].backbone.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(first, last, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
