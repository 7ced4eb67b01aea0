"""Backward projection g(new embedding) -> old embedding: new queries search the old gallery as is.

The single-modality form of cross-modal BCT's projection (Jang and Lim, 2024): instead of making
the new model compatible, an MLP maps its embeddings into the old model's space, fitted by MSE on
the training set's embeddings by both models. Case `proj/old`: g(new query) vs the old gallery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.experiment.config import method_section
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import MethodCases, register_method
from fctlib.models.mlp import mlp_layers
from fctlib.training.config import TrainConfig
from fctlib.training.loop import train
from fctlib.training.runtime import default_device, seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext


@method_section("projection")
@dataclass(frozen=True)
class ProjectionConfig:
    """Backward projection g(new embedding) -> old embedding: MLP hidden widths and training."""

    training: TrainConfig
    hidden_widths: list[int] = field(default_factory=lambda: [256])

    def __post_init__(self):
        if self.hidden_widths and min(self.hidden_widths) < 1:
            raise ValueError(f"hidden_widths must be positive, got {self.hidden_widths}")


class Projection(nn.Module):
    """An MLP new_dim -> hidden widths (BatchNorm + ReLU after each) -> old_dim (plain last)."""

    def __init__(self, new_dim: int, old_dim: int, hidden_widths: tuple[int, ...] = (256,)):
        super().__init__()
        if min(new_dim, old_dim) < 1 or any(w < 1 for w in hidden_widths):
            raise ValueError("need new_dim, old_dim and every hidden width >= 1")
        self.new_dim, self.old_dim = new_dim, old_dim
        self.net = nn.Sequential(*mlp_layers([new_dim, *hidden_widths, old_dim]))

    def forward(self, new: torch.Tensor) -> torch.Tensor:
        return self.net(new)


def _mse_step(model: nn.Module, batch) -> torch.Tensor:
    new, old = batch
    return F.mse_loss(model(new), old)


def train_projection(
    model: Projection,
    new: np.ndarray,
    old: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint=None,
    device=None,
) -> list[dict]:
    """Fit g by MSE from new embeddings to the old embeddings of the same images (resumable)."""
    if new.ndim != 2 or old.ndim != 2 or len(new) != len(old):
        raise ValueError(f"need (N, new_dim) and (N, old_dim) arrays, got {new.shape}, {old.shape}")
    if (new.shape[1], old.shape[1]) != (model.new_dim, model.old_dim):
        raise ValueError(f"the projection maps {model.new_dim} -> {model.old_dim} dimensions, got "
                         f"arrays of {new.shape[1]} and {old.shape[1]}")
    data = TensorDataset(torch.as_tensor(new, dtype=torch.float32),
                         torch.as_tensor(old, dtype=torch.float32))
    return train(model, data, _mse_step, cfg, seed=seed, checkpoint=checkpoint, device=device,
                 desc="projection")


@torch.no_grad()
def project_embeddings(model: Projection, new: np.ndarray, *, batch_size: int = 8192,
                       device: torch.device | None = None) -> np.ndarray:
    """g applied to stored new embeddings in batches; returns float32 (N, old_dim)."""
    device = device or default_device()
    model = model.to(device).eval()
    if new.ndim != 2 or new.shape[1] != model.new_dim:
        raise ValueError(f"new embeddings must be (N, {model.new_dim}), got {new.shape}")
    out = np.empty((len(new), model.old_dim), dtype=np.float32)
    for start in range(0, len(new), batch_size):
        chunk = torch.as_tensor(np.asarray(new[start:start + batch_size]), dtype=torch.float32)
        out[start:start + batch_size] = model(chunk.to(device)).float().cpu().numpy()
    return out


# -- in a run -------------------------------------------------------------------------------------
def projection_artifact(run: RunContext) -> Artifact:
    """g: new embedding -> old embedding, fitted by MSE on the training set's cached embeddings
    by the new and the old model (the same images)."""
    cfg = run.preset.method("projection")
    old, new = run.artifact("old"), run.artifact("new")

    def fit(folder: Path):
        old_train, new_train = run.embeddings(old, "train"), run.embeddings(new, "train")
        seed_everything(run.seed)
        model = Projection(new_train.shape[1], old_train.shape[1], tuple(cfg.hidden_widths))
        return model, train_projection(model, new_train, old_train, cfg.training, seed=run.seed,
                                       checkpoint=folder / "model.pt", device=run.device)

    return Artifact("projection", "projection", (cfg,), fit, (old, new))


def projected_queries(run: RunContext, split: str = "test") -> np.ndarray:
    """g(new embedding) of a split: new-model queries mapped into the old model's space."""
    model, _ = run.trained(projection_artifact(run))
    return project_embeddings(model, run.embeddings("new", split), device=run.device)


@register_method("projection", order=50, notation=(
    "`proj`", "`new`'s queries mapped back into the old space by g"))
def projection_cases(run: RunContext) -> MethodCases:
    """Backward projection: g(new query) against the old gallery, unchanged."""
    return MethodCases({"proj/old": (projected_queries(run), run.embeddings("old", "test"))},
                       "new")
