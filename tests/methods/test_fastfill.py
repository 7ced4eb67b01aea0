import math

import numpy as np
import pandas as pd
import pytest
import torch

from fctlib.experiment.config import PARAMS_DIR, PresetError, load_preset
from fctlib.methods.fastfill import (
    fastfill_artifact,
    fastfill_gallery,
    fastfill_loss,
    per_sample_loss,
    sigma_error_correlation,
    train_fastfill,
)
from fctlib.models.transformation import FastFill, Transformation, upgrade_with_uncertainty
from fctlib.suite.run import Run
from fctlib.training.config import TrainConfig

CPU = torch.device("cpu")


def _model(side_dim=3, seed=0):
    torch.manual_seed(seed)
    return FastFill(Transformation(5, side_dim, 4, branch_widths=(8,), mixer_widths=(8,)),
                    head_width=6)


def test_loss_by_hand():
    """ml-fct's FastFill loss written out: l = mean over dimensions of the squared error + the
    cross-entropy with label smoothing 0.1, (1 - 0.1) * -log p_y + 0.1 * mean_k -log p_k;
    loss = mean(0.5 * exp(-sigma) * l + mu * sigma)."""
    feature = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    new = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    sigma = torch.tensor([0.3, -0.2])
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, -1.0]])
    labels = torch.tensor([0, 2])
    squared = [(0 + 4) / 2, (1 + 4) / 2]  # mean over the 2 dimensions, not the sum
    ce = []
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        nll = [log_z - v for v in row]
        ce.append(0.9 * nll[y] + 0.1 * sum(nll) / len(nll))
    per_sample = [0.5 * math.exp(-s) * (m + c) + 0.5 * s
                  for s, m, c in zip(sigma.tolist(), squared, ce, strict=True)]
    got = fastfill_loss(feature, sigma, new, logits, labels)  # the published mu and smoothing
    assert got.item() == pytest.approx(sum(per_sample) / 2, rel=1e-6)
    summed = fastfill_loss(feature, sigma, new, logits, labels, label_smoothing=0.0)
    assert summed.item() != pytest.approx(got.item(), rel=1e-3)  # the smoothing is applied
    assert per_sample_loss(feature, new, logits, labels).tolist() == pytest.approx(
        [m + c for m, c in zip(squared, ce, strict=True)], rel=1e-6)


def test_uncertainty_head_is_one_linear_layer_by_default():
    """As ml-fct's MLP_BN_SIDE_PROJECTION_SIGMA: Linear(new_dim, 1) on h's output."""
    h = Transformation(5, 3, 4, branch_widths=(8,), mixer_widths=(8,))
    head = FastFill(h).uncertainty
    assert [type(m) for m in head] == [torch.nn.Linear]
    assert (head[0].in_features, head[0].out_features) == (4, 1)
    assert len(FastFill(h, head_width=6).uncertainty) == 3  # the MLP variant: linear, ReLU, linear
    assert load_preset("smoke").method("fastfill").head_width is None
    assert load_preset("smoke").method("fastfill").label_smoothing == 0.1


def test_sigma_optimum_is_the_log_of_the_loss():
    """d/dsigma of 0.5 exp(-sigma) l + mu sigma vanishes at sigma = log(l / (2 mu))."""
    feature, new = torch.tensor([[3.0, 0.0]]), torch.zeros(1, 2)
    logits, labels = torch.zeros(1, 2), torch.tensor([1])
    loss_value = 9 / 2 + math.log(2)  # mean squared error plus cross-entropy of uniform logits
    for mu, expected_zero in ((0.5, True), (0.1, True), (0.5, False)):
        optimum = math.log(loss_value / (2 * mu))
        sigma = torch.tensor([optimum if expected_zero else optimum + 1.0], requires_grad=True)
        fastfill_loss(feature, sigma, new, logits, labels, mu=mu).backward()
        assert (abs(sigma.grad.item()) < 1e-6) == expected_zero


def test_sigma_error_correlation():
    new = np.zeros((5, 2))
    transformed = np.array([[1, 0], [0, 2], [3, 0], [0, 4], [5, 0]], float)
    assert sigma_error_correlation(np.arange(5.0), transformed, new) == pytest.approx(1.0)
    assert sigma_error_correlation(-np.arange(5.0), transformed, new) == pytest.approx(-1.0)


def test_training_checks_its_inputs():
    model = _model()
    old, side, new = np.zeros((10, 5)), np.zeros((10, 3)), np.zeros((10, 4))
    cfg = TrainConfig(epochs=1, optimizer="adam", lr=1e-3)
    with pytest.raises(ValueError, match="lengths differ"):
        train_fastfill(model, old, side, new, np.zeros(9, int), torch.zeros(3, 4), cfg, seed=0)
    with pytest.raises(ValueError, match="classifier weight"):
        train_fastfill(model, old, side, new, np.zeros(10, int), torch.zeros(3, 5), cfg, seed=0)
    with pytest.raises(ValueError, match="class indices"):
        train_fastfill(model, old, side, new, np.full(10, 3), torch.zeros(3, 4), cfg, seed=0)
    with pytest.raises(ValueError, match="mu"):
        train_fastfill(model, old, side, new, np.zeros(10, int), torch.zeros(3, 4), cfg, seed=0,
                       mu=0.0)


def test_every_preset_trains_fastfill_with_the_transformation_recipe():
    """Published FastFill trains h with FCT's recipe, so both steps cost about the same."""
    for path in sorted(PARAMS_DIR.glob("*.yaml")):
        if path.name == "defaults.yaml":
            continue
        preset = load_preset(path)
        fastfill = preset.method("fastfill")
        assert fastfill.training == preset.transformation.training, path.name
        assert fastfill.mu == 0.5, path.name


def test_fastfill_settings_are_validated():
    with pytest.raises(PresetError, match="mu > 0"):
        load_preset("smoke", {"methods": {"fastfill": {"mu": 0}}}).check_methods()
    with pytest.raises(PresetError, match="unknown key 'methods.fastfill.muu'"):
        load_preset("smoke", {"methods": {"fastfill": {"muu": 1.0}}}).check_methods()


def test_loss_goes_down_and_sigma_tracks_the_loss_on_fashion_mnist(fashion_mnist, tmp_path):
    """Smoke-sized real data (old and new models trained a few epochs, so that the new classifier
    means something): the loss falls, sigma ranks samples like their loss l, the step is cached
    by its settings."""
    overrides = {"old": {"training": {"epochs": 5}}, "new": {"training": {"epochs": 5}},
                 "methods": {"fastfill": {"training": {"epochs": 60, "lr": 0.002}}}}
    run = Run("smoke", 0, overrides=overrides, runs_dir=tmp_path, device=CPU)
    model, history = run.trained(fastfill_artifact(run, 8))
    losses = [h["loss"] for h in history]
    # at its optimum sigma the loss is mu (1 + log(l / (2 mu))), so a fall of mu log 2 is l
    # halved (l itself has the smoothed cross-entropy's floor, so the loss cannot halve)
    assert losses[-1] < losses[0] - 0.5 * math.log(2), losses
    old, side, new = (run.embeddings(name, "train") for name in ("old", "side:8", "new"))
    feature, sigma = upgrade_with_uncertainty(model, old, side, device=CPU)
    feature_t = torch.from_numpy(feature)
    logits = feature_t @ run.trained("new")[0].classifier.weight.detach().T
    loss = per_sample_loss(feature_t, torch.from_numpy(new), logits,
                           torch.from_numpy(run.splits.train.labels).long()).numpy()
    ranks = pd.Series(sigma).rank(), pd.Series(loss).rank()
    assert ranks[0].corr(ranks[1]) > 0.3
    gallery, test_sigma = fastfill_gallery(run, 8)
    assert gallery.shape == run.embeddings("new", "test").shape
    assert test_sigma.shape == (len(gallery),)
    assert len(list(run.root.glob("fastfill-*"))) == 1
    other_mu = {**overrides, "methods": {"fastfill": {**overrides["methods"]["fastfill"],
                                                      "mu": 0.2}}}
    other = Run("smoke", 0, overrides=other_mu, runs_dir=tmp_path, device=CPU)
    other.trained(fastfill_artifact(other, 8))
    assert len(list(run.root.glob("fastfill-*"))) == 2
    fresh = Run("smoke", 0, overrides=overrides, runs_dir=tmp_path, device=CPU)
    assert fresh.trained(fastfill_artifact(fresh, 8))[1] == history  # loaded, not trained
