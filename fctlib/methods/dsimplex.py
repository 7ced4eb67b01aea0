"""Stationary representations from a fixed d-Simplex classifier, with the higher-order
compatibility (HOC) loss (Biondi et al., CVPR 2024).

Every generation's classifier is frozen to the vertices of one regular simplex sized for the
final number of classes, so features of the same class point to the same place across model
updates; the new model adds an InfoNCE between its feature and the old model's feature of the
same image, with negatives from other classes only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.splits import select_classes
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.suite.store import Artifact
from fctlib.training.loop import classification_loss

if TYPE_CHECKING:
    from fctlib.suite.run import Run

CROSS_ENTROPY_WEIGHT, HOC_WEIGHT, HOC_SCALE = 0.1, 0.9, 10.0  # the published setting


def simplex_spec(spec):
    """The network of a d-Simplex model: `spec` without the ReLU on its embedding. The simplex's
    vertices have negative coordinates, which a non-negative (ReLU) feature cannot point at."""
    return dataclasses.replace(spec, embedding_relu=False)


def simplex_vertices(num_classes: int, dim: int) -> torch.Tensor:
    """(num_classes, dim) unit vectors, the vertices of a regular simplex centred at the origin:
    every pair has cosine -1 / (num_classes - 1). Needs dim >= num_classes - 1."""
    if num_classes < 2 or dim < num_classes - 1:
        raise ValueError(f"a {num_classes}-class simplex needs >= 2 classes and an embedding of "
                         f">= {num_classes - 1} dimensions, got {dim}")
    centred = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    # An orthonormal basis of the (num_classes - 1)-dimensional span of the centred vertices.
    basis, _, _ = torch.linalg.svd(centred.T, full_matrices=False)
    coords = centred @ basis[:, : num_classes - 1]
    coords = coords / coords.norm(dim=1, keepdim=True)
    vertices = torch.zeros(num_classes, dim, dtype=torch.float64)
    vertices[:, : num_classes - 1] = coords
    return vertices.float()


class SimplexClassifier(nn.Module):
    """A bias-free linear classifier frozen to simplex vertices (rows `classes` of a simplex for
    `total_classes`): features learn to point at their class's vertex."""

    def __init__(self, dim: int, total_classes: int, classes: list[int] | None = None):
        super().__init__()
        rows = simplex_vertices(total_classes, dim)
        self.register_buffer("weight", rows if classes is None else rows[classes])

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return feature @ self.weight.T


def hoc_loss(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor,
             scale: float = HOC_SCALE) -> torch.Tensor:
    """InfoNCE of each new feature against the old feature of the same image (positive) and the
    old features of the batch's images of other classes (negatives), on L2-normalised features."""
    new, old = F.normalize(new.float(), dim=1), F.normalize(old.float(), dim=1)
    logits = scale * new @ old.T
    same_class = labels[:, None] == labels[None, :]
    positive = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(same_class & ~positive, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(labels), device=labels.device))


def dsimplex_loss(logits: torch.Tensor, new: torch.Tensor, old: torch.Tensor,
                  labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """0.1 x cross-entropy on the simplex classifier's logits + 0.9 x HOC against the old
    model's features (the published weights)."""
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return CROSS_ENTROPY_WEIGHT * ce + HOC_WEIGHT * hoc_loss(new, old, labels)


def dsimplex_training_step(old_model: nn.Module, label_smoothing: float = 0.0):
    """Loss step of the new d-Simplex model: dsimplex_loss against the frozen old d-Simplex
    model's features of the same (augmented) images."""
    old_model = old_model.eval().requires_grad_(False)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        feature, logits = model(images)
        with torch.no_grad():
            old_feature, _ = old_model.to(images.device)(images)
        return dsimplex_loss(logits, feature, old_feature, labels, label_smoothing)

    return step


# -- in a run -------------------------------------------------------------------------------------
def simplex_model(spec: ModelSpec, in_channels: int, num_vertices: int,
                  classes: list[int]) -> nn.Module:
    """The network of `spec` without its embedding ReLU, its classifier frozen to the rows of
    `classes` of a simplex of `num_vertices` vertices."""
    spec = simplex_spec(spec)
    model = build_model(spec, in_channels, len(classes))
    model.classifier = SimplexClassifier(spec.embedding_dim, num_vertices, classes)
    return model


@artifact_kind("dsimplex")
def dsimplex_encoder(run: Run, generation: str) -> Artifact:
    """d-Simplex models (`dsimplex:old|new`), both with the classifier frozen to the simplex of
    every class: `old` on the old classes (cross-entropy), `new` on all classes (0.1 cross-entropy
    + 0.9 HOC against the old d-Simplex model's features)."""
    if generation not in ("old", "new"):
        raise ValueError(f"generation must be 'old' or 'new', got {generation!r}")
    s = run.splits
    stage = run.preset.old if generation == "old" else run.preset.new
    classes = s.old_classes if generation == "old" else s.all_classes
    upstream = () if generation == "old" else (run.artifact("dsimplex:old"),)
    smoothing = stage.training.label_smoothing

    def fit(folder: Path):
        loss = (dsimplex_training_step(run.trained(upstream[0])[0], smoothing) if upstream
                else classification_loss(smoothing))
        return fit_classifier(
            run, folder,
            lambda: simplex_model(stage.model, s.bundle.channels, s.bundle.num_classes, classes),
            select_classes(s.train, classes), classes, loss, stage.training,
            desc=f"dsimplex {generation}")

    return Artifact(f"dsimplex:{generation}", f"dsimplex-{generation}",
                    (simplex_spec(stage.model), stage.training), fit, upstream)


@register_method("dsimplex", criteria=(("dsimplex/old", "dsimplex-old/dsimplex-old"),
                                       ("dsimplex/old", "old/old")))
def dsimplex_cases(run: Run) -> MethodCases:
    """d-Simplex: both generations trained with the same fixed simplex classifier (the new one
    with HOC), compared across models with no transformation; its old model's own retrieval
    (`dsimplex-old/dsimplex-old`) is what `dsimplex/old` must beat to be compatible."""
    old, new = run.embeddings("dsimplex:old", "test"), run.embeddings("dsimplex:new", "test")
    return MethodCases({"dsimplex-old/dsimplex-old": (old, old), "dsimplex/old": (new, old),
                        "dsimplex/dsimplex": (new, new)}, "dsimplex:new")
