"""FastFill (Jaeckle et al., ICLR 2023): the FCT transformation with an uncertainty head.

A scalar sigma is predicted from the transformed feature by one linear layer and weighs each
sample's loss l = mean over dimensions of (h(old, side) - new)^2 + the label-smoothed (0.1)
cross-entropy of the frozen new classifier on h(old, side), as
mean(0.5 * exp(-sigma) * l + mu * sigma), mu = 0.5. At its optimum sigma = log(l / (2 mu)): the
samples with the highest sigma are those whose transformed feature is expected to be worst (far
from the new embedding or misclassified by the new classifier), which partial backfilling
re-embeds first.

As the authors' code (apple/ml-fct FastFill, commit 1a7f8b5): `utils/getters.py` builds
`nn.MSELoss(reduction="none")` and `trainers/transformation_trainer.py` takes its `.mean(dim=1)`;
`configs/cifar100_fastfill_transformation.yaml` sets `LabelSmoothing` 0.1 (mu_disc 1) and
mu_uncertainty 0.5; `models/transformations.py` (MLP_BN_SIDE_PROJECTION_SIGMA) has
`uncertainty_head = nn.Linear(new_embedding_dim, 1)`; `utils/objectives.py` (UncertaintyLoss)
is 0.5 * exp(-sigma) * l + mu * sigma, averaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.data.splits import remap_labels
from fctlib.methods.fct import (
    Transformation,
    build_transformation,
    freeze_batchnorm_from,
    read_saved_model,
    training_features,
    training_tensors,
    transformation_sizes,
    upgrade_embeddings,
)
from fctlib.methods.registry import MethodCases, register_method
from fctlib.methods.side_info import side_encoder
from fctlib.models.mlp import mlp_layers
from fctlib.suite.store import Artifact
from fctlib.training.checkpoint import save_torch
from fctlib.training.config import TrainConfig
from fctlib.training.loop import train
from fctlib.training.runtime import default_device, seed_everything

if TYPE_CHECKING:
    from fctlib.suite.run import Run

FASTFILL_FORMAT = "fct-fastfill/1"
MU, LABEL_SMOOTHING = 0.5, 0.1  # published: mu_uncertainty 0.5, LabelSmoothing 0.1 (mu_disc 1)


class FastFill(nn.Module):
    """An FCT transformation h and an uncertainty head from h's output to sigma: one linear layer
    (published), or with `head_width` an MLP of that hidden width (the suite's earlier variant);
    forward returns (h(old, side), sigma)."""

    def __init__(self, transformation: Transformation, head_width: int | None = None):
        super().__init__()
        if head_width is not None and head_width < 1:
            raise ValueError(f"head_width must be >= 1 or None, got {head_width}")
        self.transformation, self.head_width = transformation, head_width
        widths = [transformation.new_dim, 1] if head_width is None else [
            transformation.new_dim, head_width, 1]
        self.uncertainty = nn.Sequential(*mlp_layers(widths, batchnorm=False))

    def forward(self, old: torch.Tensor, side: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.transformation(old, side)
        return feature, self.uncertainty(feature).squeeze(1)


def per_sample_loss(feature: torch.Tensor, new: torch.Tensor, logits: torch.Tensor,
                    labels: torch.Tensor, label_smoothing: float = LABEL_SMOOTHING
                    ) -> torch.Tensor:
    """l per sample, in float32: the squared error (feature - new)^2 averaged over dimensions
    plus the label-smoothed cross-entropy of `logits` (the frozen new classifier on `feature`)."""
    squared = (feature.float() - new.float()).square().mean(1)
    return squared + F.cross_entropy(logits.float(), labels, reduction="none",
                                     label_smoothing=label_smoothing)


def fastfill_loss(feature: torch.Tensor, sigma: torch.Tensor, new: torch.Tensor,
                  logits: torch.Tensor, labels: torch.Tensor, *, mu: float = MU,
                  label_smoothing: float = LABEL_SMOOTHING) -> torch.Tensor:
    """mean(0.5 * exp(-sigma) * l + mu * sigma) with l = per_sample_loss(...), in float32."""
    loss = per_sample_loss(feature, new, logits, labels, label_smoothing)
    sigma = sigma.float()
    return (0.5 * torch.exp(-sigma) * loss + mu * sigma).mean()


def _loss_step(classifier_weight: torch.Tensor, mu: float, label_smoothing: float):
    on_device: dict[torch.device, torch.Tensor] = {}  # the frozen weight, copied once per device

    def step(model: nn.Module, batch) -> torch.Tensor:
        old, side, new, labels = batch
        feature, sigma = model(old, side)
        if feature.device not in on_device:
            on_device[feature.device] = classifier_weight.to(feature.device)
        logits = F.linear(feature.float(), on_device[feature.device])
        return fastfill_loss(feature, sigma, new, logits, labels, mu=mu,
                             label_smoothing=label_smoothing)

    return step


def train_fastfill(
    model: FastFill,
    old: np.ndarray,
    side: np.ndarray | None,
    new: np.ndarray,
    labels: np.ndarray,
    classifier_weight: torch.Tensor,
    cfg: TrainConfig,
    *,
    mu: float = MU,
    label_smoothing: float = LABEL_SMOOTHING,
    seed: int,
    checkpoint=None,
    device=None,
) -> list[dict]:
    """Fit h and its uncertainty head by the FastFill loss against the frozen new classifier
    (`classifier_weight`, classes x new_dim, bias-free), `label_smoothing` on its cross-entropy;
    BatchNorm is frozen for the second half."""
    if mu <= 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    h = model.transformation
    tensors = training_tensors(h, old, side, new, np.asarray(labels, dtype=np.int64))
    labels_t = tensors[-1]
    weight = classifier_weight.detach().float().cpu()
    if weight.ndim != 2 or weight.shape[1] != h.new_dim:
        raise ValueError(f"classifier weight must be (classes, {h.new_dim}), "
                         f"got {tuple(weight.shape)}")
    if len(labels_t) and not 0 <= int(labels_t.min()) <= int(labels_t.max()) < weight.shape[0]:
        raise ValueError(f"labels must be class indices in [0, {weight.shape[0]})")
    return train(
        model, TensorDataset(*tensors),
        _loss_step(weight, mu, label_smoothing), cfg, seed=seed, checkpoint=checkpoint,
        device=device, on_epoch_start=freeze_batchnorm_from(cfg.epochs // 2), desc="fastfill",
    )


@torch.no_grad()
def upgrade_with_uncertainty(
    model: FastFill,
    old: np.ndarray,
    side: np.ndarray | None = None,
    *,
    batch_size: int = 8192,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The transformed embeddings h(old, side) (N, new_dim) and their sigmas (N,), float32."""
    device = device or default_device()
    features = upgrade_embeddings(model.transformation, old, side, batch_size=batch_size,
                                  device=device)
    head = model.uncertainty.to(device).eval()
    sigma = np.empty(len(features), dtype=np.float32)
    for start in range(0, len(features), batch_size):
        chunk = torch.as_tensor(features[start:start + batch_size], device=device)
        sigma[start:start + batch_size] = head(chunk).squeeze(1).float().cpu().numpy()
    return features, sigma


def sigma_error_correlation(sigma: np.ndarray, transformed: np.ndarray, new: np.ndarray) -> float:
    """Spearman rank correlation between sigma and the real error ||new - h(old)|| of each item
    (1: sigma orders a gallery as the oracle does)."""
    error = np.linalg.norm(np.asarray(new, np.float64) - np.asarray(transformed, np.float64),
                           axis=1)
    return float(pd.Series(sigma).rank().corr(pd.Series(error).rank()))


def save_fastfill(model: FastFill, path: str | Path) -> Path:
    """Save FastFill (h and its head) with its sizes, for `fct upgrade` and `load_fastfill`."""
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return save_torch({"format": FASTFILL_FORMAT, "head_width": model.head_width,
                       "sizes": transformation_sizes(model.transformation), "state_dict": state},
                      path)


def load_fastfill(path: str | Path) -> FastFill:
    """A FastFill model saved by `save_fastfill`, in eval mode on the CPU."""
    saved = read_saved_model(path, (FASTFILL_FORMAT,))
    model = FastFill(build_transformation(saved["sizes"]), saved["head_width"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# -- in a run -------------------------------------------------------------------------------------
def fastfill_artifact(run: Run, side_dim: int) -> Artifact:
    """FastFill's h (the transformation's widths) and uncertainty head, fitted on the training
    set against the frozen new classifier; `side_dim=0`: without side-info."""
    cfg, h = run.preset.fastfill, run.preset.transformation
    upstream = (run.artifact("old"), run.artifact("new"))
    upstream += (run.artifact(side_encoder(side_dim)),) if side_dim else ()

    def fit(folder: Path):
        old, side, new = training_features(run, side_dim)
        labels = remap_labels(run.splits.train, run.splits.all_classes).labels
        seed_everything(run.seed)
        model = FastFill(Transformation(old.shape[1], side_dim, new.shape[1],
                                        tuple(h.branch_widths), tuple(h.mixer_widths)),
                         cfg.head_width)
        return model, train_fastfill(
            model, old, side, new, np.tile(labels, len(old) // len(labels)),
            run.trained("new")[0].classifier.weight, cfg.training, mu=cfg.mu,
            label_smoothing=cfg.label_smoothing, seed=run.seed, checkpoint=folder / "model.pt",
            device=run.device)

    # recipe 2: mean (not summed) squared error, label smoothing, linear head (as published)
    return Artifact(f"fastfill:{side_dim}", "fastfill",
                    (cfg, h.branch_widths, h.mixer_widths, h.feature_views, side_dim), fit,
                    upstream, recipe=2)


def fastfill_gallery(run: Run, side_dim: int, split: str = "test"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """FastFill's transformed gallery of a split (from stored vectors) and each item's sigma."""
    model, _ = run.trained(fastfill_artifact(run, side_dim))
    side = run.embeddings(side_encoder(side_dim), split) if side_dim else None
    return upgrade_with_uncertainty(model, run.embeddings("old", split), side, device=run.device)


@register_method("fastfill")
def fastfill_cases(run: Run) -> MethodCases:
    """FastFill at 0% backfill: new queries against its transformed gallery, without and with
    side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fastfill/no-side": (new, fastfill_gallery(run, 0)[0]),
                        "fastfill/side": (new, fastfill_gallery(run, dim)[0])}, "new")
