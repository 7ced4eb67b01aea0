"""OCA (Ricci et al., 2024): backward-compatible aligned representations through an orthogonal
transformation layer.

The new backbone embeds in the old size plus extra dimensions; the embedding is L2-normalised
and passed through an orthogonal layer (which keeps distances) before a bias-free classifier. Its
first old-size coordinates are pulled towards the old model's class prototypes, so they can be
searched against the old gallery directly while the extra dimensions stay free.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

from fctlib.data.splits import remap_labels
from fctlib.methods.bct import influence_loss
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import build_backbone
from fctlib.suite.store import Artifact

if TYPE_CHECKING:
    from fctlib.suite.run import Run

EXTRA_DIMS = 32  # published: the new embedding is 32 dimensions wider than the old one
CROSS_ENTROPY_WEIGHT, INFLUENCE_WEIGHT, PULL_WEIGHT = 5.0, 10.0, 5.0  # published weights


class OCAHead(nn.Module):
    """normalise -> orthogonal layer -> bias-free classifier; forward returns (z, logits), z the
    aligned embedding whose first `old_dim` coordinates are the backward-compatible slice."""

    def __init__(self, old_dim: int, num_classes: int, extra_dims: int = EXTRA_DIMS):
        super().__init__()
        if old_dim < 1 or extra_dims < 0:
            raise ValueError(f"need old_dim >= 1 and extra_dims >= 0, got {old_dim}, {extra_dims}")
        self.old_dim, self.dim = old_dim, old_dim + extra_dims
        self.orthogonal = orthogonal(nn.Linear(self.dim, self.dim, bias=False))
        self.classifier = nn.Linear(self.dim, num_classes, bias=False)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.orthogonal(F.normalize(feature, dim=1))
        return z, self.classifier(z)

    def compatible_slice(self, z: torch.Tensor) -> torch.Tensor:
        """The coordinates searched against the old gallery."""
        return z[:, : self.old_dim]


class OCAModel(nn.Module):
    """A backbone (embedding of the old size + extra dimensions) under an OCAHead; forward returns
    (z, logits), so the suite's training loop and embedding extraction take it as it is."""

    def __init__(self, backbone: nn.Module, head: OCAHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


def class_prototypes(embeddings: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, d) mean embedding of each class; every class needs a sample."""
    embeddings, labels = torch.as_tensor(embeddings).float(), torch.as_tensor(labels).long()
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no samples to build their prototype from")
    sums = torch.zeros(num_classes, embeddings.shape[1]).index_add_(0, labels, embeddings)
    return sums / torch.bincount(labels, minlength=num_classes)[:, None]


def prototype_pull(compatible: torch.Tensor, labels: torch.Tensor,
                   prototypes: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(slice, its class's old prototype)."""
    return (1 - F.cosine_similarity(compatible.float(), prototypes[labels], dim=1)).mean()


def oca_loss(z: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, old_dim: int,
             prototypes: torch.Tensor, covered: torch.Tensor,
             label_smoothing: float = 0.1) -> torch.Tensor:
    """5 x label-smoothed cross-entropy + 10 x influence loss of the old-size slice through the
    old class prototypes (mean old embeddings) + 5 x the cosine pull towards them."""
    compatible = z[:, :old_dim]
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    keep = covered[labels]
    pull = prototype_pull(compatible[keep], labels[keep], prototypes) if keep.any() else 0.0
    return (CROSS_ENTROPY_WEIGHT * ce
            + INFLUENCE_WEIGHT * influence_loss(compatible, labels, prototypes, covered)
            + PULL_WEIGHT * pull)


def oca_training_step(prototypes: torch.Tensor, old_dim: int, label_smoothing: float = 0.1):
    """Loss step of OCA training (oca_loss) against the old model's class prototypes, which cover
    every class (the old model embeds the new classes' images too)."""
    covered = torch.ones(len(prototypes), dtype=torch.bool)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        z, logits = model(images)
        return oca_loss(z, logits, labels, old_dim, prototypes.to(labels.device),
                        covered.to(labels.device), label_smoothing)

    return step


# -- in a run -------------------------------------------------------------------------------------
@artifact_kind("oca")
def oca_encoder(run: Run, arg: str) -> Artifact:
    """OCA's new model (new recipe, every class): an embedding `oca.extra_dims` wider than the
    old one under the orthogonal head, trained with oca_loss against the old model's class
    prototypes (mean old embeddings of the training set, new classes included)."""
    new, s = run.preset.new, run.splits
    old_dim, extra = run.preset.old.model.embedding_dim, run.preset.oca.extra_dims
    spec = dataclasses.replace(new.model, embedding_dim=old_dim + extra)
    old = run.artifact("old")

    def fit(folder: Path):
        prototypes = class_prototypes(run.embeddings(old, "train"),
                                      remap_labels(s.train, s.all_classes).labels,
                                      len(s.all_classes))
        loss = oca_training_step(prototypes, old_dim, new.training.label_smoothing)
        return fit_classifier(
            run, folder, lambda: OCAModel(build_backbone(spec, s.bundle.channels),
                                          OCAHead(old_dim, len(s.all_classes), extra)),
            s.train, s.all_classes, loss, new.training, desc="oca")

    return Artifact("oca", "oca", (spec, new.training, run.preset.oca), fit, (old,))


@register_method("oca", criteria=(("oca/old", "old/old"),))
def oca_cases(run: Run) -> MethodCases:
    """OCA: the old-size slice of the new aligned embedding searches the old gallery directly
    (`oca/old`); the whole embedding searches its own gallery (`oca/oca`)."""
    aligned = run.embeddings("oca", "test")
    old = run.embeddings("old", "test")
    return MethodCases({"oca/old": (aligned[:, : old.shape[1]], old),
                        "oca/oca": (aligned, aligned)}, "oca")
