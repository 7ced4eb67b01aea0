"""BCT's published variants (Shen et al., CVPR 2020, as each author's code builds it): their
influence rows, influence losses and new networks, without a run (`methods.bct` trains them).

The variants (sources in params/defaults.yaml, `methods.bct`):
- `openbct` (A): the frozen old classifier's rows, influence CE on old-class samples only;
- `openbct-g` (B): rows = class means of L2-normalised old features, every class;
- `bt2` (C): L2-normalised new feature (own classifier and influence), rows as B, label
  smoothing 0.1 on both terms, weight 10, BT-2's optimiser;
- `openbct-normsm` (D): the new model's own classifier openBCT's normalised softmax (scale 30) as
  its code computes it (a kernel normalised per feature dimension, logits clamped), influence as A;
- `normface`: the same with the textbook NormFace classifier (each class row normalised; this
  suite's `openbct-normsm` before issue 23), for the record only;
- `hybrid`: old trained rows + raw new-class means in one softmax (this suite before issue 15),
  for the record only: anti-compatible by construction, never chosen;
- `random-rows`: a control, openbct-g with random rows (no old-model information), never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fctlib.models.backbones import KernelNormClassifier, UnitEmbedding, build_model
from fctlib.models.spec import ModelSpec

ROWS = ("old-classifier", "unit-means", "hybrid", "random")  # how the influence rows are built
RECORD_ONLY = ("hybrid", "random-rows", "normface")  # measured when listed, never chosen


@dataclass(frozen=True)
class Variant:
    """One published construction of BCT: its influence rows, which samples and classes take part
    (`classes`: "old", only old-class samples and old rows; "all"), whether the new feature is
    L2-normalised (in the model's output, its own classifier and the influence term), the label
    smoothing of the influence CE, whether the new model's own classifier is a normalised softmax
    (`normsm`; `kernel`: openBCT's code form, KernelNormClassifier, else NormFace's rows), and its
    published weight."""

    name: str
    rows: str
    classes: str
    normalize: bool
    influence_smoothing: float
    normsm: bool
    published_weight: float
    source: str
    kernel: bool = False

    @property
    def chainable(self) -> bool:
        """Whether a generation trained with it has linear rows for the next (the multi-step
        chain): not a normalised softmax's."""
        return not self.normsm

    @property
    def choosable(self) -> bool:
        """Whether the variant may be chosen on tune (the hybrid and the control are for the
        record only)."""
        return self.name not in RECORD_ONLY


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("openbct", "old-classifier", "old", False, 0.0, False, 1.0,
            "openBCT @69e798c main.py, --old-fc --n2o-map"),
    Variant("openbct-g", "unit-means", "all", False, 0.0, False, 1.0,
            "openBCT @69e798c -g, evaluate/evaluators.py ClassifierGenerator"),
    Variant("bt2", "unit-means", "all", True, 0.1, False, 10.0,
            "BT-2 @8282360 train_BCT.py, trainers/bct_trainer.py, configs/cifar100_BCT.yaml"),
    Variant("openbct-normsm", "old-classifier", "old", False, 0.0, True, 1.0,
            "openBCT @69e798c --use-norm-sm, models/resnet.py (kernel normalised along dim 1, "
            "clamped)", kernel=True),
    Variant("normface", "old-classifier", "old", False, 0.0, True, 1.0,
            "openbct-normsm with NormFace's per-class rows (this suite before issue 23)"),
    Variant("hybrid", "hybrid", "all", False, 0.0, False, 1.0,
            "this suite before issue 15 (published by no one)"),
    Variant("random-rows", "random", "all", False, 0.0, False, 1.0,
            "a control (published by no one): openbct-g with random rows of its rows' mean norm, "
            "carrying no old-model information"),
)}


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, classes: list[int],
                dim: int, normalize: bool) -> torch.Tensor:
    """Row c = the mean embedding of class c (of L2-normalised embeddings if `normalize`, the mean
    itself not re-normalised, as openBCT's ClassifierGenerator and BT-2's train_BCT.py)."""
    x = F.normalize(embeddings, dim=1) if normalize else embeddings
    rows = torch.zeros(len(classes), dim)
    for i, c in enumerate(classes):
        members = x[labels == c]
        if len(members) == 0:
            raise ValueError(f"class {c} has no samples to build its influence row from")
        rows[i] = members.mean(0)
    return rows


def influence_rows(
    variant: Variant | str, old_weight: torch.Tensor, old_classes: list[int], num_classes: int,
    old_embeddings: np.ndarray | torch.Tensor, labels: np.ndarray, *, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen rows of a variant's influence softmax (num_classes x d) and the mask of the
    classes taking part (their samples count, their rows compete).

    `old_weight` holds the old classifier's rows in `old_classes` order; `old_embeddings` and
    `labels` are the old model's embeddings of the training images (every class) and their labels;
    `seed` draws the control's random directions.
    """
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    old_weight = torch.as_tensor(old_weight, dtype=torch.float32).detach().cpu()
    if old_weight.shape[0] != len(old_classes):
        raise ValueError(
            f"old classifier has {old_weight.shape[0]} rows but {len(old_classes)} old classes")
    embeddings = torch.as_tensor(np.asarray(old_embeddings), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    dim = old_weight.shape[1]
    weight = torch.zeros(num_classes, dim)
    covered = torch.zeros(num_classes, dtype=torch.bool)
    old = list(old_classes)
    new = sorted(set(range(num_classes)) - set(old))
    if v.rows in ("old-classifier", "hybrid"):
        weight[old], covered[old] = old_weight, True
    if v.rows == "hybrid" and new:
        weight[new] = class_means(embeddings, labels, new, dim, normalize=False)
        covered[new] = True
    if v.rows in ("unit-means", "random"):
        every = list(range(num_classes))
        weight[every] = class_means(embeddings, labels, every, dim, normalize=True)
        covered[:] = True
    if v.rows == "random":  # random unit directions at the class means' mean norm
        directions = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(seed))
        weight = F.normalize(directions, dim=1) * weight.norm(dim=1).mean()
    return weight, covered


def covered_columns(covered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The covered classes (the influence softmax's columns, in class order) and each class's
    column (-1 for an uncovered class), on the mask's device."""
    columns = torch.nonzero(covered).flatten()
    position = torch.full((len(covered),), -1, dtype=torch.long, device=covered.device)
    position[columns] = torch.arange(len(columns), device=covered.device)
    return columns, position


def influence_logits(new_embedding: torch.Tensor, labels: torch.Tensor, old_weight: torch.Tensor,
                     covered: torch.Tensor, *, normalize: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits over the covered classes only (columns in class order) of the samples of covered
    classes, and those samples' targets as column indices."""
    keep = covered[labels]
    columns, position = covered_columns(covered)
    f = new_embedding[keep].float()
    if normalize:
        f = F.normalize(f, dim=1)
    return f @ old_weight[columns].t(), position[labels[keep]]


def influence_loss(
    new_embedding: torch.Tensor, labels: torch.Tensor, old_weight: torch.Tensor,
    covered: torch.Tensor, *, label_smoothing: float = 0.0, normalize: bool = False,
) -> torch.Tensor:
    """Cross-entropy of the new embedding (L2-normalised first if `normalize`) through the frozen
    rows, with `label_smoothing`; only samples of covered classes count, and only covered classes
    compete in the softmax (smoothing spreads over them alone)."""
    if not covered[labels].any():
        return new_embedding.sum() * 0.0
    logits, target = influence_logits(new_embedding, labels, old_weight, covered,
                                      normalize=normalize)
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


class WholeBatchInfluence:
    """`influence_loss` in a form an accelerator runs without waiting for it: every sample's
    logits over the covered rows, the samples of uncovered classes given no loss, the sum over
    the count of the others; selecting samples (boolean indexing, `nonzero`, `.any()`) waits for
    the device four times a step. The same loss up to float rounding (tests/methods/test_bct.py);
    a CPU keeps `influence_loss`, whose arithmetic made the committed CPU results."""

    def __init__(self, old_weight: torch.Tensor, covered: torch.Tensor, *,
                 label_smoothing: float = 0.0, normalize: bool = False):
        columns, self.position = covered_columns(covered.cpu())
        self.rows = old_weight.detach().cpu()[columns]
        self.label_smoothing, self.normalize = label_smoothing, normalize
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, new_embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        device = labels.device
        if device not in self._on:  # copied to the device once, not every step
            self._on[device] = (self.rows.to(device), self.position.to(device))
        rows, position = self._on[device]
        target = position[labels]
        f = new_embedding.float()
        if self.normalize:
            f = F.normalize(f, dim=1)
        losses = F.cross_entropy(f @ rows.t(), target, ignore_index=-1, reduction="none",
                                 label_smoothing=self.label_smoothing)
        return losses.sum() / (target >= 0).sum().clamp(min=1)


def bct_loss(
    label_smoothing: float, old_weight: torch.Tensor, covered: torch.Tensor,
    influence_weight: float, *, influence_smoothing: float = 0.0, normalize: bool = False,
) -> Callable:
    """Loss step of BCT training: the new model's own (label-smoothed) CE plus the weighted
    influence loss (on an accelerator in its `WholeBatchInfluence` form)."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    whole_batch = WholeBatchInfluence(old_weight, covered, label_smoothing=influence_smoothing,
                                      normalize=normalize)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        if labels.device.type == "cpu":
            influence = influence_loss(embedding, labels, old_weight.to(labels.device),
                                       covered.to(labels.device),
                                       label_smoothing=influence_smoothing, normalize=normalize)
        else:
            influence = whole_batch(embedding, labels)
        return criterion(logits, labels) + influence_weight * influence

    return step


def variant_loss(variant: Variant | str, label_smoothing: float, old_weight: torch.Tensor,
                 covered: torch.Tensor, influence_weight: float) -> Callable:
    """bct_loss as `variant` builds it (its influence smoothing and normalisation)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    return bct_loss(label_smoothing, old_weight, covered, influence_weight,
                    influence_smoothing=v.influence_smoothing, normalize=v.normalize)


def build_bct_model(variant: Variant | str, spec: ModelSpec, channels: int, num_classes: int,
                    normsm_scale: float) -> nn.Module:
    """The new network a variant trains: the new architecture with a bias-free linear classifier,
    on the L2-normalised embedding for `bt2`, a normalised softmax of `normsm_scale` for
    `openbct-normsm` (openBCT's code form) and `normface` (per-class rows)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    model = build_model(spec, channels, num_classes,
                        cosine_scale=normsm_scale if v.normsm else None)
    if v.kernel:
        model.classifier = KernelNormClassifier(spec.embedding_dim, num_classes, normsm_scale)
    if v.normalize:
        model.backbone = UnitEmbedding(model.backbone)
    return model
