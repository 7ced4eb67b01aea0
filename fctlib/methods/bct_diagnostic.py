"""BCT's influence-CE diagnostic: can each construction of the influence rows classify the old
model's own features (as if the new model were the old one)? A construction that cannot is broken
before any new model trains."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from fctlib.methods.bct_variants import VARIANTS, influence_logits, influence_rows

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext

FLAG_ACCURACY = 0.5  # a construction classifying fewer of the old model's own old-class
# training features into their class than this share of what the old classifier itself
# classifies cannot classify them: flagged


def influence_floor(rows: torch.Tensor, covered: torch.Tensor, label_smoothing: float,
                    scales: torch.Tensor, steps: int = 300) -> torch.Tensor:
    """Per covered class (in class order), the lowest influence CE a feature of norm `scales[c]`
    can reach against the rows, by gradient descent over its direction (from the class's row)."""
    columns = torch.nonzero(covered).flatten()
    w = rows[columns].detach()
    target = torch.arange(len(columns))
    u = (w + 1e-3 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))).clone()
    u.requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=0.05)
    scale = scales[columns].float().unsqueeze(1)
    best = torch.full((len(columns),), math.inf)
    for _ in range(steps):
        logits = (scale * F.normalize(u, dim=1)) @ w.t()
        loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing, reduction="none")
        best = torch.minimum(best, loss.detach())
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    return best


def influence_diagnostic(
    old_embeddings: np.ndarray, labels: np.ndarray, old_weight: torch.Tensor,
    old_classes: list[int], num_classes: int, variants: tuple[str, ...] = tuple(VARIANTS), *,
    seed: int = 0,
) -> list[dict]:
    """Per construction, the influence CE of the old model's own training embeddings (as if the
    new model were the old one): `ce` over the samples it covers, `ce_old` over old-class samples,
    `floor` (the lowest CE a feature of its class's mean norm, or unit norm where the variant
    normalises, can reach there: influence_floor, sample-weighted), `accuracy_old` (old-class
    samples whose argmax row is their class), `new_row_wins` (old-class samples won by a
    new-class row; None without new-class rows), the old classifier's own accuracy on those
    samples, and `flagged` (accuracy_old below FLAG_ACCURACY of that); `seed` draws the control's
    rows as training does."""
    x = torch.as_tensor(np.asarray(old_embeddings), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    is_old = torch.as_tensor(np.isin(np.asarray(labels), old_classes))
    norms = x.norm(dim=1)
    weight = torch.as_tensor(old_weight, dtype=torch.float32).detach().cpu()
    predicted = torch.as_tensor(list(old_classes))[(x[is_old] @ weight.t()).argmax(1)]
    reference = (predicted == y[is_old]).float().mean().item()  # the old classifier's own
    out = []
    for name in variants:
        v = VARIANTS[name]
        rows, covered = influence_rows(v, old_weight, old_classes, num_classes, x, labels,
                                       seed=seed)
        keep = covered[y]
        logits, target = influence_logits(x, y, rows, covered, normalize=v.normalize)
        ce = F.cross_entropy(logits, target, label_smoothing=v.influence_smoothing,
                             reduction="none")
        columns = torch.nonzero(covered).flatten()
        won = columns[logits.argmax(1)]  # the class whose row wins each covered sample
        old_kept = is_old[keep]
        scales = torch.ones(num_classes)
        if not v.normalize:
            for c in columns.tolist():
                scales[c] = norms[y == c].mean()
        floors = influence_floor(rows, covered, v.influence_smoothing, scales)
        per_sample_floor = floors[torch.searchsorted(columns, y[keep])]
        new_rows = covered.clone()
        new_rows[list(old_classes)] = False
        wins = new_rows[won[old_kept]].float().mean().item() if new_rows.any() else None
        accuracy = (won[old_kept] == y[keep][old_kept]).float().mean().item()
        out.append({"variant": name, "rows": v.rows, "classes": v.classes,
                    "normalize": v.normalize, "label_smoothing": v.influence_smoothing,
                    "ce": ce.mean().item(), "ce_old": ce[old_kept].mean().item(),
                    "floor": per_sample_floor.mean().item(), "accuracy_old": accuracy,
                    "new_row_wins": wins, "old_classifier_accuracy": reference,
                    "flagged": accuracy < FLAG_ACCURACY * reference})
    return out


def run_diagnostic(run: RunContext) -> list[dict]:
    """influence_diagnostic of the run's old model on its training split."""
    s = run.splits
    model, _ = run.trained("old")
    return influence_diagnostic(run.embeddings("old", "train"), s.train.labels,
                                model.classifier.weight, s.old_classes, s.bundle.num_classes,
                                seed=run.seed)
