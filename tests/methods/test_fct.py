import numpy as np
import torch

from fctlib.methods.fct import freeze_batchnorm_from, train_transformation
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.training.config import TrainConfig

CPU = torch.device("cpu")


def _known_map(n=4096, seed=0):
    """new = tanh(old @ A) + side @ B: the side term cannot be recovered from old alone."""
    rng = np.random.default_rng(seed)
    old = rng.normal(size=(n, 8)).astype(np.float32)
    side = rng.normal(size=(n, 4)).astype(np.float32)
    a, b = rng.normal(size=(8, 6)) / 2, rng.normal(size=(4, 6))
    new = (np.tanh(old @ a) + side @ b).astype(np.float32)
    return old, side, new


CFG = TrainConfig(epochs=20, batch_size=128, optimizer="adam", lr=3e-3, weight_decay=0,
                  warmup_epochs=1)


def _fit(side_dim, old, side, new):
    torch.manual_seed(0)
    h = Transformation(8, side_dim, 6, branch_widths=(64,), mixer_widths=(128,))
    train_transformation(h, old, side if side_dim else None, new, CFG, seed=0, device=CPU)
    return h


def test_recovers_known_map_and_uses_side_info():
    old, side, new = _known_map()
    old_t, side_t, new_t = old[:3072], side[:3072], new[:3072]
    held_old, held_side, held_new = old[3072:], side[3072:], new[3072:]
    with_side = _fit(4, old_t, side_t, new_t)
    without = _fit(0, old_t, side_t, new_t)
    variance = held_new.var()
    mse_side = ((upgrade_embeddings(with_side, held_old, held_side, device=CPU) - held_new) ** 2)
    mse_none = ((upgrade_embeddings(without, held_old, device=CPU) - held_new) ** 2)
    assert mse_side.mean() < 0.05 * variance, (mse_side.mean(), variance)
    assert mse_none.mean() > 5 * mse_side.mean(), (mse_none.mean(), mse_side.mean())


def test_batchnorm_statistics_frozen_in_second_half():
    h = Transformation(8, 4, 6, branch_widths=(16,), mixer_widths=(16,))
    hook = freeze_batchnorm_from(2)
    h.train()
    hook(h, 1)
    assert all(m.training for m in h.modules())
    hook(h, 2)
    bns = [m for m in h.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and not any(m.training for m in bns)
    before = [m.running_mean.clone() for m in bns]
    h(torch.randn(32, 8) * 5 + 3, torch.randn(32, 4))
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, bns, strict=True))
