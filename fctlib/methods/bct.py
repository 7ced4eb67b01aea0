"""BCT (Shen et al., CVPR 2020) as its authors' code builds it: a family of named variants of the
influence loss, each an artifact (BCTName, `bct:<variant>:<weight>`), and the (variant, weight)
chosen on the tune split (`bct_diagnostic.py`: how each construction's rows classify the old
model's own features, with no training).

The variants (sources in params/defaults.yaml, `bct:`):
- `openbct` (A): the frozen old classifier's rows, influence CE on old-class samples only;
- `openbct-g` (B): rows = class means of L2-normalised old features, every class;
- `bt2` (C): L2-normalised new feature (own classifier and influence), rows as B, label
  smoothing 0.1 on both terms, weight 10, BT-2's optimiser;
- `openbct-normsm` (D): the new model's own classifier a normalised softmax (scale 30), influence
  as A;
- `hybrid`: old trained rows + raw new-class means in one softmax (this suite before issue 15),
  for the record only: anti-compatible by construction, never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.splits import select_classes
from fctlib.evaluation.distances import DISTANCES
from fctlib.experiment.config import BCT_RECORD_ONLY, BCT_VARIANTS
from fctlib.experiment.names import ArtifactName, number
from fctlib.experiment.store import Artifact
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_chain,
    register_method,
)
from fctlib.models.backbones import build_model

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext
    from fctlib.models.spec import ModelSpec

ROWS = ("old-classifier", "unit-means", "hybrid")  # how the influence rows are built


@dataclass(frozen=True)
class Variant:
    """One published construction of BCT: its influence rows, which samples and classes take part
    (`classes`: "old", only old-class samples and old rows; "all"), whether the new feature is
    L2-normalised (in the model's output, its own classifier and the influence term), the label
    smoothing of the influence CE, whether the new model's own classifier is a normalised softmax,
    and its published weight."""

    name: str
    rows: str
    classes: str
    normalize: bool
    influence_smoothing: float
    normsm: bool
    published_weight: float
    source: str

    @property
    def choosable(self) -> bool:
        """Whether the variant may be chosen on tune (the hybrid is for the record only)."""
        return self.name not in BCT_RECORD_ONLY


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("openbct", "old-classifier", "old", False, 0.0, False, 1.0,
            "openBCT @69e798c main.py, --old-fc --n2o-map"),
    Variant("openbct-g", "unit-means", "all", False, 0.0, False, 1.0,
            "openBCT @69e798c -g, evaluate/evaluators.py ClassifierGenerator"),
    Variant("bt2", "unit-means", "all", True, 0.1, False, 10.0,
            "BT-2 @8282360 train_BCT.py, trainers/bct_trainer.py, configs/cifar100_BCT.yaml"),
    Variant("openbct-normsm", "old-classifier", "old", False, 0.0, True, 1.0,
            "openBCT @69e798c --use-norm-sm, models/resnet.py"),
    Variant("hybrid", "hybrid", "all", False, 0.0, False, 1.0,
            "this suite before issue 15 (published by no one)"),
)}  # in the order of config.BCT_VARIANTS (tests/methods/test_bct.py)


@dataclass(frozen=True)
class BCTName(ArtifactName):
    """phi_new trained with BCT's influence loss as `variant` (VARIANTS) builds it, at `weight`."""

    variant: str
    weight: float
    kind: ClassVar[str] = "bct"
    form: ClassVar[str] = "bct:<variant>:<weight>"
    example: ClassVar[str] = "bct:bt2:10.0"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"BCT artifacts are named bct:<variant>:<weight>, variant one of "
                             f"{BCT_VARIANTS}; got variant {self.variant!r}")
        if not self.weight >= 0:
            raise ValueError(f"the weight must be >= 0, got {self.weight}")

    @classmethod
    def parse(cls, arg: str) -> BCTName:
        variant, sep, weight = arg.partition(":")
        if not sep:
            raise ValueError(f"BCT artifacts are named bct:<variant>:<weight>, got bct:{arg}")
        return cls(variant, number(weight, "the weight"))

    def __str__(self) -> str:
        return f"bct:{self.variant}:{float(self.weight)}"


# -- the influence rows and loss ---------------------------------------------------------------
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
    old_embeddings: np.ndarray | torch.Tensor, labels: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen rows of a variant's influence softmax (num_classes x d) and the mask of the
    classes taking part (their samples count, their rows compete).

    `old_weight` holds the old classifier's rows in `old_classes` order; `old_embeddings` and
    `labels` are the old model's embeddings of the training images (every class) and their labels.
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
    if v.rows == "unit-means":
        every = list(range(num_classes))
        weight[every] = class_means(embeddings, labels, every, dim, normalize=True)
        covered[:] = True
    return weight, covered


def influence_logits(new_embedding: torch.Tensor, labels: torch.Tensor, old_weight: torch.Tensor,
                     covered: torch.Tensor, *, normalize: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits over the covered classes only (columns in class order) of the samples of covered
    classes, and those samples' targets as column indices."""
    keep = covered[labels]
    columns = torch.nonzero(covered).flatten()
    position = torch.full((len(covered),), -1, dtype=torch.long, device=labels.device)
    position[columns] = torch.arange(len(columns), device=labels.device)
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


def bct_loss(
    label_smoothing: float, old_weight: torch.Tensor, covered: torch.Tensor,
    influence_weight: float, *, influence_smoothing: float = 0.0, normalize: bool = False,
) -> Callable:
    """Loss step of BCT training: the new model's own (label-smoothed) CE plus the weighted
    influence loss."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        weight, mask = old_weight.to(labels.device), covered.to(labels.device)
        return criterion(logits, labels) + influence_weight * influence_loss(
            embedding, labels, weight, mask, label_smoothing=influence_smoothing,
            normalize=normalize)

    return step


def variant_loss(variant: Variant | str, label_smoothing: float, old_weight: torch.Tensor,
                 covered: torch.Tensor, influence_weight: float) -> Callable:
    """bct_loss as `variant` builds it (its influence smoothing and normalisation)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    return bct_loss(label_smoothing, old_weight, covered, influence_weight,
                    influence_smoothing=v.influence_smoothing, normalize=v.normalize)


class UnitEmbedding(nn.Module):
    """A backbone whose embedding is L2-normalised (BT-2's `norm_feature: True`)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(x), dim=1)


def build_bct_model(variant: Variant | str, spec: ModelSpec, channels: int, num_classes: int,
                    normsm_scale: float) -> nn.Module:
    """The new network a variant trains: the new architecture with a bias-free linear classifier,
    on the L2-normalised embedding for `bt2`, a normalised softmax of `normsm_scale` for
    `openbct-normsm`."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    model = build_model(spec, channels, num_classes,
                        cosine_scale=normsm_scale if v.normsm else None)
    if v.normalize:
        model.backbone = UnitEmbedding(model.backbone)
    return model


@artifact_kind(BCTName)
def bct_encoder(run: RunContext, name: BCTName) -> Artifact:
    """phi_new trained with BCT's influence loss: the variant's rows, model and recipe
    (`bct.bt2_training` for bt2, the new model's otherwise)."""
    variant, weight = VARIANTS[name.variant], name.weight
    new, s, cfg = run.preset.new, run.splits, run.preset.bct
    if new.model.embedding_dim != run.preset.old.model.embedding_dim:
        raise ValueError(
            "BCT needs the old and new embedding sizes to match "
            f"({run.preset.old.model.embedding_dim} vs {new.model.embedding_dim})")
    training = cfg.training(variant.name, new.training)
    scale = cfg.normsm_scale if variant.normsm else None
    old = run.artifact("old")

    def fit(folder: Path):
        old_weight, covered = influence_rows(
            variant, run.trained(old)[0].classifier.weight, s.old_classes, s.bundle.num_classes,
            run.embeddings(old, "train"), s.train.labels)
        loss = variant_loss(variant, training.label_smoothing, old_weight, covered, weight)
        return fit_classifier(
            run, folder, lambda: build_bct_model(variant, new.model, s.bundle.channels,
                                                 len(s.all_classes), cfg.normsm_scale),
            s.train, s.all_classes, loss, training, desc=f"bct {variant.name} w={weight:g}")

    return Artifact(str(name), f"bct-{variant.name}",
                    (variant, new.model, training, scale, weight), fit, upstream=(old,))


# -- measuring the variants and choosing one on tune -------------------------------------------
def score(metrics: dict) -> float:
    """What the choice maximises: bct/old's mean of top-1 and mAP (all queries)."""
    return (metrics["top1"] + metrics["mAP"]) / 2


def variant_points(run: RunContext, splits: tuple[str, ...] = ("tune", "test"),
                   distances: tuple[str, ...] = DISTANCES) -> list[dict]:
    """Every (variant, weight) of the preset's sweep on each split under each distance: bct/old,
    bct/bct, the independent old/old and new/new (metrics of all queries), and the mean norm of
    the BCT embeddings over the old model's."""
    points = []
    for split in splits:
        old, new = run.embeddings("old", split), run.embeddings("new", split)
        old_norm = float(np.linalg.norm(old, axis=1).mean())
        old_old = {d: run.evaluate(old, old, split, d)["all"] for d in distances}
        new_new = {d: run.evaluate(new, new, split, d)["all"] for d in distances}
        for variant, weight in run.preset.bct.models():
            bct = run.embeddings(BCTName(variant, weight), split)
            ratio = float(np.linalg.norm(bct, axis=1).mean()) / max(old_norm, 1e-12)
            for d in distances:
                points.append({"variant": variant, "weight": float(weight), "split": split,
                               "distance": d, "bct/old": run.evaluate(bct, old, split, d)["all"],
                               "bct/bct": run.evaluate(bct, bct, split, d)["all"],
                               "old/old": old_old[d], "new/new": new_new[d],
                               "norm_ratio": ratio})
    return points


def choose_from(points: list[dict], distance: str) -> tuple[str, float]:
    """The (variant, weight) with the best bct/old score on the tune split under `distance`,
    among the variants that may be chosen (ties: the first in sweep order)."""
    tune = [p for p in points if p["split"] == "tune" and p["distance"] == distance
            and VARIANTS[p["variant"]].choosable]
    if not tune:
        raise ValueError(f"no tune-split point under {distance!r} of a variant that may be chosen")
    best = max(tune, key=lambda p: score(p["bct/old"]))
    return best["variant"], best["weight"]


def choose(run: RunContext) -> tuple[str, float, list[dict]]:
    """The variant and weight chosen on the tune split under the preset's distance, and the tune
    points (both distances) the choice was made from."""
    points = variant_points(run, splits=("tune",))
    variant, weight = choose_from(points, run.preset.distance)
    return variant, weight, points


def choose_weight(run: RunContext) -> tuple[float, list[dict]]:
    """The chosen weight (of the chosen variant, see `choose`) and the tune points."""
    _, weight, points = choose(run)
    return weight, points


def chosen_artifact(run: RunContext) -> BCTName:
    """The artifact name of the (variant, weight) chosen on tune."""
    variant, weight, _ = choose(run)
    return BCTName(variant, weight)


@register_method("bct", order=20, criteria=(("bct/old", "old/old"),), notation=(
    "`bct`", "a new model trained with BCT's influence loss through the old classifier (its "
             "variant and weight chosen on `tune`)"))
def bct_cases(run: RunContext) -> MethodCases:
    """BCT at the variant and influence-loss weight chosen on the tune split (choose)."""
    own = chosen_artifact(run)
    query, old = run.embeddings(own, "test"), run.embeddings("old", "test")
    return MethodCases({"bct/old": (query, old), "bct/bct": (query, query)}, own)


@multistep_chain("bct", order=20)
def bct_generation(steps: Generations, k: int) -> Artifact:
    """Generation k trained with BCT's influence loss (variant `multistep.bct_variant`, its recipe
    and network) through generation k-1; the chain starts from an ordinary model."""
    if k == 0:
        return steps.generation("independent", 0)
    run, classes, stage = steps.run, steps.generations[k], steps.stage(k)
    previous = steps.generation("bct", k - 1)
    weight, variant = run.preset.multistep.bct_weight, run.preset.multistep.bct_variant
    training = run.preset.bct.training(variant, stage.training)
    channels = run.splits.bundle.channels

    def fit(folder: Path):
        rows, covered = influence_rows(
            variant, run.trained(previous)[0].classifier.weight, steps.generations[k - 1],
            len(steps.generations[-1]), run.embeddings(previous, "train"),
            run.splits.train.labels)
        loss = variant_loss(variant, training.label_smoothing, rows[classes], covered[classes],
                            weight)
        return fit_classifier(
            run, folder, lambda: build_bct_model(variant, stage.model, channels, len(classes),
                                                 run.preset.bct.normsm_scale),
            select_classes(run.splits.train, classes), classes, loss, training,
            desc=f"bct generation {k + 1}")

    return Artifact(f"gen:bct:{k}", f"multistep-bct{k}",
                    (classes, stage, weight, variant, training), fit, (previous,))
