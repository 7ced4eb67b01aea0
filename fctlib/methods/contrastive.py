"""Cross-model contrastive compatibility: the new model is trained with its cross-entropy plus an
InfoNCE term whose anchor is the new embedding of an image, whose positive is the frozen old
model's embedding of the same image, and whose negatives are the old embeddings of the batch's
images of other classes.

Form followed: OpenCompatible (TencentARC/OpenCompatible @6eb5499, model/loss.py:39-50 `contra`,
:136-158 `forward`; the code of Hot-Refresh / RACT, ICLR 2022): both embeddings L2-normalised (the
old one detached), same-class images (the anchor's own included) masked out of the negatives, the
`topk_neg` most similar negatives kept, logits / temperature 0.01, cross-entropy with the positive
as target, weight 1, added to the classifier's cross-entropy (trainer/trainer.py:253-263); the
old model frozen in eval mode. `new_negatives: true` is RACT's `contra_ract` (:52-66): the new
embeddings of other-class images are negatives too. One device, so the batch is not gathered
across GPUs (`gather_all`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.experiment.config import method_section
from fctlib.experiment.store import Artifact
from fctlib.methods.independent import check_same_size, fit_new_against_old
from fctlib.methods.registry import MethodCases, artifact_kind, register_method

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext

MASKED = 1e9  # subtracted from the logits of same-class pairs, as OpenCompatible does


@method_section("contrastive")
@dataclass(frozen=True)
class ContrastiveConfig:
    """`methods.contrastive` of a preset (defaults: OpenCompatible's utils/util.py:113-128)."""

    temperature: float = 0.01
    topk_neg: int = 10  # the most similar negatives kept per set; 0: every negative
    weight: float = 1.0
    new_negatives: bool = False  # RACT's contra_ract: new embeddings of other classes too

    def __post_init__(self):
        if self.temperature <= 0 or self.weight <= 0 or self.topk_neg < 0:
            raise ValueError("temperature and weight must be > 0 and topk_neg >= 0, got "
                             f"{self.temperature}, {self.weight}, {self.topk_neg}")


def cross_model_infonce(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor,
                        cfg: ContrastiveConfig) -> torch.Tensor:
    """OpenCompatible's `contra` (or `contra_ract` with `cfg.new_negatives`) on one batch."""
    f = F.normalize(new.float(), dim=1)
    g = F.normalize(old.float(), dim=1).detach()
    same_class = (labels[:, None] == labels[None, :]).float() * MASKED
    positive = (f * g).sum(dim=1, keepdim=True)
    negative_sets = [f @ g.T - same_class]
    if cfg.new_negatives:
        negative_sets.append(f @ f.T - same_class)
    if cfg.topk_neg:
        negative_sets = [torch.topk(n, min(cfg.topk_neg, n.shape[1]), dim=1)[0]
                         for n in negative_sets]
    logits = torch.cat([positive, *negative_sets], dim=1) / cfg.temperature
    target = torch.zeros(len(labels), dtype=torch.long, device=labels.device)
    return F.cross_entropy(logits, target) * cfg.weight


def contrastive_loss(label_smoothing: float, old_model: nn.Module,
                     cfg: ContrastiveConfig) -> Callable:
    """Loss step: the new model's label-smoothed cross-entropy plus `cross_model_infonce` against
    the frozen `old_model`'s embeddings of the same batch."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        with torch.no_grad():
            old = old_model(images)[0]
        return criterion(logits, labels) + cross_model_infonce(embedding, old, labels, cfg)

    return step


@artifact_kind("contrastive")
def contrastive_encoder(run: RunContext) -> Artifact:
    """phi_new trained on every class with the new recipe and the cross-model contrastive term."""
    new, cfg = run.preset.new, run.preset.method("contrastive")
    check_same_size(run, "the cross-model contrastive loss")
    old = run.artifact("old")

    def fit(folder: Path):
        return fit_new_against_old(
            run, folder, old,
            lambda teacher: contrastive_loss(new.training.label_smoothing, teacher, cfg),
            desc="contrastive")

    return Artifact("contrastive", "contrastive", (new.model, new.training, cfg), fit,
                    upstream=(old,))


@register_method("contrastive", order=27, criteria=(("con/old", "old/old"),),
                 protocol=("cosine",), notation=(
                     "`con`", "a new model trained with its cross-entropy plus a cross-model "
                              "InfoNCE term: its embedding of an image against the old model's "
                              "of the same image, other classes' old embeddings as negatives"))
def contrastive_cases(run: RunContext) -> MethodCases:
    """The contrastively aligned new model searches the old gallery (`con/old`) and its own
    (`con/con`); its features are compared normalised (cosine)."""
    query, old = run.embeddings("contrastive", "test"), run.embeddings("old", "test")
    return MethodCases({"con/old": (query, old), "con/con": (query, query)}, "contrastive")
