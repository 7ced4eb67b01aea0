"""Stationary representations from a fixed d-Simplex classifier, with the higher-order
compatibility (HOC) loss (Biondi et al., CVPR 2024).

Every generation's classifier is frozen to the vertices of one regular simplex sized for the
final number of classes, so features of the same class point to the same place across model
updates; the new model adds an InfoNCE between its feature and the old model's feature of the
same image, with negatives from other classes only.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

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
