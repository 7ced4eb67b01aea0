"""OCA (Ricci et al., 2024): backward-compatible aligned representations through an orthogonal
transformation layer.

The new backbone embeds in the old size plus extra dimensions; the embedding is L2-normalised
and passed through an orthogonal layer (which keeps distances) before a bias-free classifier. Its
first old-size coordinates are pulled towards the old model's class prototypes, so they can be
searched against the old gallery directly while the extra dimensions stay free.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

from .bct import influence_loss

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
