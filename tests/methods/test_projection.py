import numpy as np
import pytest
import torch

from fctlib.methods.projection import (
    Projection,
    project_embeddings,
    projected_queries,
    projection_artifact,
    train_projection,
)
from fctlib.suite.run import Run
from fctlib.training.config import TrainConfig

CPU = torch.device("cpu")
CFG = TrainConfig(epochs=30, batch_size=128, optimizer="adam", lr=3e-3, weight_decay=0,
                  warmup_epochs=1, label_smoothing=0.0)


def test_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    new = rng.normal(size=(4096, 12)).astype(np.float32)
    old = (new @ rng.normal(size=(12, 6))).astype(np.float32)
    torch.manual_seed(0)
    g = Projection(12, 6, (64,))
    train_projection(g, new[:3072], old[:3072], CFG, seed=0, device=CPU)
    held_out = project_embeddings(g, new[3072:], batch_size=100, device=CPU)
    mse = ((held_out - old[3072:]) ** 2).mean()
    assert held_out.shape == (1024, 6) and held_out.dtype == np.float32
    assert mse < 0.02 * old.var(), (mse, old.var())


def test_architecture_and_shape_checks():
    g = Projection(16, 8, (32, 24))
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 24), (24, 8)]
    assert isinstance(g.net[-1], torch.nn.Linear)  # plain last layer
    assert [(m.in_features, m.out_features) for m in Projection(16, 8, ()).modules()
            if isinstance(m, torch.nn.Linear)] == [(16, 8)]
    with pytest.raises(ValueError, match="maps 16 -> 8"):
        train_projection(g, np.zeros((4, 8), np.float32), np.zeros((4, 8), np.float32), CFG,
                         seed=0, device=CPU)
    with pytest.raises(ValueError, match=r"\(N, new_dim\)"):
        train_projection(g, np.zeros((4, 16), np.float32), np.zeros((3, 8), np.float32), CFG,
                         seed=0, device=CPU)
    with pytest.raises(ValueError, match=r"must be \(N, 16\)"):
        project_embeddings(g, np.zeros((4, 8), np.float32), device=CPU)


def test_run_step_learns_on_real_data_and_is_cached(smoke_run):
    g, history = smoke_run.trained(projection_artifact(smoke_run))
    losses = [h["loss"] for h in history]
    assert len(losses) == smoke_run.preset.method("projection").training.epochs
    assert losses[-1] < 0.8 * losses[0], losses
    queries = projected_queries(smoke_run, "test")
    old_dim = smoke_run.preset.old.model.embedding_dim
    assert queries.shape == (len(smoke_run.splits.test), old_dim)
    checkpoint = next(smoke_run.root.glob("projection-*/model.pt"))
    written = checkpoint.stat().st_mtime_ns
    fresh = Run(smoke_run.preset, 0, runs_dir=smoke_run.root.parent.parent, device=CPU)
    _, again = fresh.trained(projection_artifact(fresh))  # loaded from the finished checkpoint
    assert again == history and checkpoint.stat().st_mtime_ns == written
    np.testing.assert_array_equal(projected_queries(fresh, "test"), queries)
