"""BCT (Shen et al., CVPR 2020): the influence loss through the frozen old classifier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import build_model
from fctlib.suite.store import Artifact

if TYPE_CHECKING:
    from fctlib.suite.run import Run

NEW_CLASS_ROWS = ("mean", "drop")


def old_classifier_for_all_classes(
    old_weight: torch.Tensor,
    old_classes: list[int],
    num_classes: int,
    old_embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    new_class_rows: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The old classifier extended to every class, and a mask of the classes it covers.

    Row c is the old classifier's row for an old class; for a class the old model never saw it is
    the mean old embedding of that class (`new_class_rows="mean"`), or left out (`"drop"`: samples
    of that class then get no influence loss).
    """
    if new_class_rows not in NEW_CLASS_ROWS:
        raise ValueError(f"new_class_rows must be one of {NEW_CLASS_ROWS}, got {new_class_rows!r}")
    old_weight = torch.as_tensor(old_weight, dtype=torch.float32).detach().cpu()
    if old_weight.shape[0] != len(old_classes):
        raise ValueError(
            f"old classifier has {old_weight.shape[0]} rows but {len(old_classes)} old classes"
        )
    embeddings = torch.as_tensor(np.asarray(old_embeddings), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    weight = torch.zeros(num_classes, old_weight.shape[1])
    covered = torch.zeros(num_classes, dtype=torch.bool)
    weight[list(old_classes)] = old_weight
    covered[list(old_classes)] = True
    if new_class_rows == "mean":
        for c in sorted(set(range(num_classes)) - set(old_classes)):
            members = embeddings[labels == c]
            if len(members) == 0:
                raise ValueError(f"class {c} has no samples to build its old-classifier row from")
            weight[c] = members.mean(0)
            covered[c] = True
    return weight, covered


def influence_loss(
    new_embedding: torch.Tensor, labels: torch.Tensor, old_weight: torch.Tensor,
    covered: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of the new embedding through the frozen old classifier.

    Only samples of covered classes count, and only covered classes compete in the softmax.
    """
    keep = covered[labels]
    if not keep.any():
        return new_embedding.sum() * 0.0
    logits = new_embedding[keep].float() @ old_weight.t()
    logits = logits.masked_fill(~covered, float("-inf"))
    return F.cross_entropy(logits, labels[keep])


def bct_loss(
    label_smoothing: float, old_weight: torch.Tensor, covered: torch.Tensor, influence_weight: float
) -> Callable:
    """Loss step of BCT training: the new model's own loss plus the weighted influence loss."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        weight, mask = old_weight.to(labels.device), covered.to(labels.device)
        return criterion(logits, labels) + influence_weight * influence_loss(
            embedding, labels, weight, mask
        )

    return step


@artifact_kind("bct")
def bct_encoder(run: Run, arg: str) -> Artifact:
    """phi_new trained with BCT's influence loss of weight `arg` (`bct:<w>`) through the frozen
    old classifier, extended to the new classes as `bct.new_class_rows` says."""
    weight, new, s = float(arg), run.preset.new, run.splits
    if new.model.embedding_dim != run.preset.old.model.embedding_dim:
        raise ValueError(
            "BCT needs the old and new embedding sizes to match "
            f"({run.preset.old.model.embedding_dim} vs {new.model.embedding_dim})"
        )
    rows = run.preset.bct.new_class_rows
    old = run.artifact("old")

    def fit(folder: Path):
        old_weight, covered = old_classifier_for_all_classes(
            run.trained(old)[0].classifier.weight, s.old_classes, s.bundle.num_classes,
            run.embeddings(old, "train"), s.train.labels, rows)
        loss = bct_loss(new.training.label_smoothing, old_weight, covered, weight)
        return fit_classifier(
            run, folder, lambda: build_model(new.model, s.bundle.channels, len(s.all_classes)),
            s.train, s.all_classes, loss, new.training, desc="bct")

    return Artifact(f"bct:{weight}", "bct", (new, rows, weight), fit, upstream=(old,))


def choose_weight(run: Run) -> tuple[float, list[dict]]:
    """The BCT weight with the best cross-model retrieval (bct/old, mean of top-1 and mAP) on
    the tune split; returns it and the whole sweep (tune metrics of bct/old and bct/bct)."""
    old_tune = run.embeddings("old", "tune")
    sweep = []
    for w in run.preset.bct.weights:
        bct_tune = run.embeddings(f"bct:{w}", "tune")
        cross = run.evaluate(bct_tune, old_tune, "tune")["all"]
        own = run.evaluate(bct_tune, bct_tune, "tune")["all"]
        sweep.append({"weight": w, "bct/old": cross, "bct/bct": own,
                      "score": (cross["top1"] + cross["mAP"]) / 2})
    best = max(sweep, key=lambda row: row["score"])
    return best["weight"], sweep


@register_method("bct", criteria=(("bct/old", "old/old"),))
def bct_cases(run: Run) -> MethodCases:
    """BCT at the influence-loss weight chosen on the tune split (choose_weight)."""
    weight, _ = choose_weight(run)
    own = f"bct:{weight}"
    query, old = run.embeddings(own, "test"), run.embeddings("old", "test")
    return MethodCases({"bct/old": (query, old), "bct/bct": (query, query)}, own)
