from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fctlib.data.images import ArrayImages
from fctlib.data.transforms import EvalTransform
from fctlib.methods import fastfill as fastfill_module
from fctlib.methods import fct as fct_module
from fctlib.methods.fastfill import FastFill, fastfill_artifact, fastfill_gallery, train_fastfill
from fctlib.methods.fastfill import fit_error as fastfill_fit_error
from fctlib.methods.fct import (
    FreshViews,
    TransformationName,
    ViewCycle,
    fit_error,
    freeze_batchnorm_from,
    generation_fit_errors,
    generation_side_info,
    generation_transformation,
    squared_error,
    train_transformation,
    train_transformation_fresh,
    training_features,
    training_tensors,
)
from fctlib.methods.side_info import SideInfoName
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.suite import run as suite_run_module
from fctlib.suite.multistep import MultiStep
from fctlib.suite.run import Run
from fctlib.training.config import TrainConfig
from fctlib.training.embed import embed
from fctlib.training.loop import train

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


@pytest.mark.parametrize("h_setting, network_setting", [("0", "default"), ("default", "0")])
def test_fits_of_h_compile_as_fct_compile_h_says_and_networks_as_fct_compile(
        monkeypatch, h_setting, network_setting):
    """The GPU check trains h eagerly where its compiled fit broke, keeping the networks compiled:
    FCT's and FastFill's fits read FCT_COMPILE_H, every other training FCT_COMPILE."""
    modes = []
    monkeypatch.setattr(torch, "compile", lambda net, mode: modes.append(mode) or net)
    monkeypatch.setenv("FCT_COMPILE", network_setting)
    monkeypatch.setenv("FCT_COMPILE_H", h_setting)
    old, side, new = _known_map(64)
    cfg = replace(CFG, epochs=1, batch_size=32)
    train_transformation(Transformation(8, 4, 6, branch_widths=(8,), mixer_widths=(8,)),
                         old, side, new, cfg, seed=0, device=CPU)
    fastfill = FastFill(Transformation(8, 4, 6, branch_widths=(8,), mixer_widths=(8,)))
    train_fastfill(fastfill, old, side, new, np.zeros(64, int), torch.zeros(3, 6), cfg, seed=0,
                   device=CPU)
    network = torch.nn.Linear(8, 6)
    train(network, TensorDataset(torch.from_numpy(old), torch.from_numpy(new)),
          lambda net, batch: torch.nn.functional.mse_loss(net(batch[0]), batch[1]), cfg, seed=0,
          device=CPU)
    compiled = {"0": [], "default": ["default"]}
    assert modes == compiled[h_setting] * 2 + compiled[network_setting]


def test_one_augmented_pass_per_epoch_and_one_pass_is_the_plain_fit():
    views, items = 3, 8
    old = np.repeat(np.arange(views, dtype=np.float32), items)[:, None].repeat(8, 1)  # pass v: v
    side, new = np.ones((views * items, 4), np.float32), np.ones((views * items, 6), np.float32)
    cycle, seen = ViewCycle(views, freeze_from=99), []

    def spy(model, batch):
        seen.append((len(batch[0]), sorted(set(batch[0][:, 0].tolist()))))
        return torch.nn.functional.mse_loss(model(batch[0], batch[1]), batch[2])

    h = Transformation(8, 4, 6, branch_widths=(8,), mixer_widths=(8,))
    cfg = TrainConfig(epochs=4, batch_size=items, optimizer="adam", lr=1e-3, warmup_epochs=0)
    train(h, cycle.dataset(training_tensors(h, old, side, new)), cycle.step(spy), cfg, seed=0,
          device=CPU, on_epoch_start=cycle.on_epoch_start)
    assert seen == [(items, [0.0]), (items, [1.0]), (items, [2.0]), (items, [0.0])]
    with pytest.raises(ValueError, match="not 3 passes of equal length"):
        cycle.dataset(training_tensors(h, old[:-1], side[:-1], new[:-1]))

    old, side, new = _known_map(256)  # one pass: the same fit as a plain TensorDataset
    fits = []
    for cycled in (True, False):
        torch.manual_seed(0)
        h = Transformation(8, 4, 6, branch_widths=(16,), mixer_widths=(16,))
        if cycled:
            history = train_transformation(h, old, side, new, CFG, seed=0, device=CPU)
        else:
            history = train(h, TensorDataset(*training_tensors(h, old, side, new)),
                            lambda m, b: torch.nn.functional.mse_loss(m(b[0], b[1]), b[2]), CFG,
                            seed=0, device=CPU, on_epoch_start=freeze_batchnorm_from(10))
        fits.append(([e["loss"] for e in history], h.state_dict()))
    # the same operations in one process on one machine: equal to the bit, not within a tolerance
    assert fits[0][0] == fits[1][0]
    assert all(torch.equal(a, b) for a, b in zip(fits[0][1].values(), fits[1][1].values(),
                                                 strict=True))


def test_fresh_views_embed_each_batch_as_the_encoders_do():
    rng = np.random.default_rng(0)
    images = ArrayImages(rng.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8), np.arange(12) % 3)
    transform = EvalTransform(8, 1, [0.5], [0.25])
    torch.manual_seed(0)
    encoders = [build_model(ModelSpec(width=2, embedding_dim=4), 1, 3) for _ in range(2)]
    encoders.append(build_model(ModelSpec(width=2, embedding_dim=3), 1, 3).backbone)
    views, got = FreshViews(images, transform, encoders, CPU, 99, labels=True), []

    def spy(model, batch):
        got.append(batch)
        return torch.nn.functional.mse_loss(model(batch[0], batch[1]), batch[2])

    h = Transformation(4, 3, 4, branch_widths=(8,), mixer_widths=(8,))
    cfg = TrainConfig(epochs=1, batch_size=12, optimizer="adam", lr=1e-3, warmup_epochs=0)
    batches = views.dataset.batches([list(range(12))], CPU)
    loss = views.step(spy)(h, next(iter(batches)))
    old, new, side = embed(encoders, images, transform, device=CPU)
    np.testing.assert_allclose(got[0][0].detach().numpy(), old, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0][1].detach().numpy(), side, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0][2].detach().numpy(), new, rtol=1e-5, atol=1e-6)
    assert got[0][3].tolist() == (np.arange(12) % 3).tolist() and loss.requires_grad
    history = train_transformation_fresh(h, FreshViews(images, transform, encoders, CPU, 99), cfg,
                                         seed=0, device=CPU)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("views", [2, 0])
def test_a_run_fits_h_fastfill_and_multistep_h_on_augmented_features(smoke_run, views):
    dim = smoke_run.preset.side_info.model.embedding_dim
    name = TransformationName(dim)
    run = Run(smoke_run.preset.name, 0, runs_dir=smoke_run.root.parent.parent, device=CPU,
              overrides={"transformation": {"feature_views": views,
                                            "training": {"epochs": 2, "warmup_epochs": 0}}})
    assert run.store.folder(run.artifact(name)) != smoke_run.store.folder(
        smoke_run.artifact(name))  # recipe 2: its own folder, never the one-pass h's
    assert run.store.key(run.artifact("old")) == smoke_run.store.key(smoke_run.artifact("old"))
    _, history = run.trained(name)
    errors = [fit_error(run, name, split) for split in ("train", "tune")]
    assert len(history) == 2 and np.isfinite(errors).all() and min(errors) > 0
    model, history = run.trained(fastfill_artifact(run, dim))
    assert len(history) == run.preset.method("fastfill").training.epochs
    assert np.isfinite([e["loss"] for e in history]).all()
    _, history = run.trained(generation_transformation(MultiStep(run), 0, 1))
    assert len(history) == 2 and np.isfinite([e["loss"] for e in history]).all()


@pytest.mark.slow
def test_augmented_passes_are_embedded_once_per_encoder_and_read_back_equal(smoke_run,
                                                                          monkeypatch):
    """Every h of a run fits on the same augmented passes of its encoders: the first computes
    them (all encoders on the same images), later ones read them back, bit for bit what
    embedding them again would give, whatever other encoders they are asked with."""
    run = Run(smoke_run.preset.name, 0, runs_dir=smoke_run.root.parent.parent, device=CPU,
              overrides={"transformation": {"feature_views": 2}})
    for cached in run.root.glob("embeddings/*/train-seed*.npy"):  # other tests' passes
        cached.unlink()
    models = [run.trained(e)[0] for e in ("old", "new")]
    passes = [embed(models, run.splits.train, run.train_transform(), device=CPU,
                    seed=run.seed * 1000 + v) for v in range(2)]
    expected = [np.concatenate([p[i] for p in passes]) for i in range(2)]
    first = training_features(run, ["old", "new"])
    # exact: the same kernels on the same batches in one process, then the saved arrays read back
    assert all(np.array_equal(a, b) for a, b in zip(first, expected, strict=True))

    def refuse(*args, **kwargs):
        raise AssertionError("an augmented pass was embedded again")

    monkeypatch.setattr(suite_run_module, "embed", refuse)
    (old,) = training_features(run, ["old"])
    assert np.array_equal(old, expected[0])
    embedded = []

    def spy(models, *args, **kwargs):
        embedded.append(len(models))
        return embed(models, *args, **kwargs)

    monkeypatch.setattr(suite_run_module, "embed", spy)
    side = SideInfoName(run.preset.side_info.model.embedding_dim)
    new, side_features = training_features(run, ["new", side])
    assert embedded == [1, 1]  # side's two passes; new's read back
    assert np.array_equal(new, expected[1]) and side_features.shape[0] == len(expected[1])


@pytest.mark.slow
def test_a_finished_h_loads_without_its_training_features(smoke_run, monkeypatch):
    """FCT's h, FastFill's h and a multi-step h, once trained, load from their checkpoints in a new
    Run: the same weights and history, and the features only training needs (augmented passes
    through every encoder, minutes on tiny-imagenet-100) are not computed again."""
    def artifacts(run):
        dim = run.preset.side_info.model.embedding_dim
        return [run.artifact(TransformationName(dim)), fastfill_artifact(run, dim),
                generation_transformation(MultiStep(run), 0, 1)]

    trained = [smoke_run.trained(a) for a in artifacts(smoke_run)]

    def refuse(*args, **kwargs):
        raise AssertionError("a finished h prepared its training features")

    for module in (fct_module, fastfill_module):
        monkeypatch.setattr(module, "training_features", refuse)
        monkeypatch.setattr(module, "fresh_views", refuse)
    again = Run(smoke_run.preset.name, 0, runs_dir=smoke_run.root.parent.parent, device=CPU)
    for artifact, (model, history) in zip(artifacts(again), trained, strict=True):
        loaded, loaded_history = again.trained(artifact)
        # exact: both are the one saved checkpoint's tensors, read back, not computed again
        assert loaded_history == history
        for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(),
                                strict=True):
            assert torch.equal(a, b), f"{artifact.name}: {name}"


@pytest.mark.slow
def test_fit_errors_are_each_h_s_squared_error_on_its_own_split(smoke_run):
    """FCT's, FastFill's and every multi-step h's fit error, against the mean of squared
    differences computed here from the upgraded embeddings. rel 1e-5: the suite sums in float64,
    this check in float32 (about 1e-7 relative per term, accumulated over thousands of terms)."""
    assert squared_error(np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]])) == pytest.approx(2.5)
    dim = smoke_run.preset.side_info.model.embedding_dim
    new_tune = smoke_run.embeddings("new", "tune")
    fastfilled, _ = fastfill_gallery(smoke_run, dim, "tune")
    assert fastfill_fit_error(smoke_run, dim, "tune") == pytest.approx(
        np.square(fastfilled - new_tune).mean(), rel=1e-5)
    steps = MultiStep(smoke_run)
    errors = generation_fit_errors(steps)
    assert list(errors) == ["0->1", "0->2", "1->2"]
    h, _ = smoke_run.trained(generation_transformation(steps, 1, 2))
    tune = smoke_run.splits.split("tune")
    rows = np.isin(tune.labels, steps.generations[2])
    upgraded = upgrade_embeddings(
        h, smoke_run.embeddings(steps.generation("independent", 1), "tune")[rows],
        smoke_run.embeddings(generation_side_info(steps), "tune")[rows], device=CPU)
    target = smoke_run.embeddings(steps.generation("independent", 2), "tune")[rows]
    assert errors["1->2"]["tune"] == pytest.approx(np.square(upgraded - target).mean(), rel=1e-5)
    assert all(0 < e[split] < np.inf for e in errors.values() for split in ("train", "tune"))
