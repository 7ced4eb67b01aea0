"""Learning without forgetting as a compatibility baseline: the new model is trained with its
cross-entropy plus the distillation of the old model's predictions through the frozen old
classifier applied to the new embedding, so the new embedding keeps the old model's view of
every image.

Form followed: openBCT's `--lwf` (YantaoShen/openBCT @69e798c main.py:495-502, with `--old-fc`):
`-sum(log_softmax(W_old phi_new(x)) * softmax(W_old phi_old(x))) / batch`, no temperature, weight
1, added to the cross-entropy (main.py:563-570); the old model in eval mode (main.py:445). Over
every image of the batch (openBCT's branch without a class map, "if there is no overlap, please
use learning without forgetting"): each image has the old model's soft target, new classes'
images included. LwF's own form (Avalanche @eb075be, regularization.py:83-99: the new model's
own logits over the old classes, temperature 2) distils the classifier, not the embedding the
old gallery holds, and is not a compatibility method; it is not built here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.experiment.store import Artifact
from fctlib.methods.independent import check_same_size, fit_new_against_old
from fctlib.methods.registry import MethodCases, artifact_kind, register_method

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext


def distillation(new_logits: torch.Tensor, old_logits: torch.Tensor) -> torch.Tensor:
    """openBCT's LwF term: the cross-entropy of the old model's softmax (targets, no gradient)
    against the log-softmax of the old classifier on the new embedding, summed over classes and
    averaged over the batch."""
    targets = F.softmax(old_logits.detach().float(), dim=1)
    return -(F.log_softmax(new_logits.float(), dim=1) * targets).sum(dim=1).mean()


def lwf_loss(label_smoothing: float, old_model: nn.Module) -> Callable:
    """Loss step: the new model's label-smoothed cross-entropy plus `distillation` through the
    frozen `old_model`'s classifier (the old model in eval mode, outside the graph)."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        with torch.no_grad():
            old_logits = old_model(images)[1]
        through_old = F.linear(embedding.float(), old_model.classifier.weight.detach().float())
        return criterion(logits, labels) + distillation(through_old, old_logits)

    return step


@artifact_kind("lwf")
def lwf_encoder(run: RunContext) -> Artifact:
    """phi_new trained on every class with the new recipe and openBCT's LwF term (`lwf_loss`)."""
    new = run.preset.new
    check_same_size(run, "LwF through the old classifier")
    old = run.artifact("old")

    def fit(folder: Path):
        return fit_new_against_old(
            run, folder, old, lambda teacher: lwf_loss(new.training.label_smoothing, teacher),
            desc="lwf")

    return Artifact("lwf", "lwf", (new.model, new.training), fit, upstream=(old,))


@register_method("lwf", order=26, criteria=(("lwf/old", "old/old"),), protocol=("cosine",),
                 notation=("`lwf`", "a new model trained with its cross-entropy plus the "
                                    "distillation of the old model's softmax through the old "
                                    "classifier on its embedding (openBCT's `--lwf`)"))
def lwf_cases(run: RunContext) -> MethodCases:
    """The distilled new model searches the old gallery (`lwf/old`) and its own (`lwf/lwf`);
    openBCT retrieves with L2-normalised features (cosine)."""
    query, old = run.embeddings("lwf", "test"), run.embeddings("old", "test")
    return MethodCases({"lwf/old": (query, old), "lwf/lwf": (query, query)}, "lwf")
