"""L2 feature regression to the old model, the simplest compatibility baseline: the new model is
trained with its own cross-entropy plus lambda times the mean squared difference between its
embedding and the frozen old model's, lambda chosen on tune by l2/old.

Form followed: the Euclidean feature loss of Less-Forgetful Learning as Avalanche implements it
(ContinualAI/avalanche, `avalanche/training/plugins/lfl.py` at 12dff05: `mse_loss(features,
prev_features)` times `lambda_e`, added to the task loss; the mean runs over the batch and the
embedding's dimensions). Departures, both forced by the update setting: the old model is another
network trained on fewer classes, so nothing of it is copied into the new one and no layer of the
new one is frozen (LFL freezes its last layer to keep the old task's classifier); and the
features of both models are taken as the training step computes them (LFL switches both models
to eval mode for them), the old model in eval mode throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.experiment.config import method_section
from fctlib.experiment.names import ArtifactName, number
from fctlib.experiment.store import Artifact
from fctlib.methods.bct import score
from fctlib.methods.independent import check_same_size, fit_new_against_old
from fctlib.methods.registry import MethodCases, artifact_kind, register_method

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext


@method_section("l2-regression")
@dataclass(frozen=True)
class L2RegressionConfig:
    """`methods.l2-regression` of a preset: the weights lambda tried (one model each), the one
    with the best l2/old on tune kept."""

    weights: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0])

    def __post_init__(self):
        if not self.weights or min(self.weights) <= 0 or len(set(self.weights)) < len(
                self.weights):
            raise ValueError(f"weights must be distinct and > 0, got {self.weights}")


def l2_regression_loss(label_smoothing: float, old_model: nn.Module, weight: float) -> Callable:
    """Loss step: the new model's label-smoothed cross-entropy plus `weight` times the mean
    squared difference between its embedding and the frozen `old_model`'s."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        embedding, logits = model(images)
        with torch.no_grad():
            target = old_model(images)[0]
        return criterion(logits, labels) + weight * F.mse_loss(embedding.float(), target.float())

    return step


@dataclass(frozen=True)
class L2Name(ArtifactName):
    """phi_new trained with the L2 pull towards phi_old at `weight` (> 0)."""

    weight: float
    kind: ClassVar[str] = "l2"
    form: ClassVar[str] = "l2:<weight>"
    example: ClassVar[str] = "l2:0.1"

    def __post_init__(self):
        if not self.weight > 0:
            raise ValueError(f"the weight must be > 0, got {self.weight}")

    @classmethod
    def parse(cls, arg: str) -> L2Name:
        return cls(number(arg, "the weight"))

    def __str__(self) -> str:
        return f"l2:{self.weight:g}"


@artifact_kind(L2Name)
def l2_encoder(run: RunContext, name: L2Name) -> Artifact:
    """phi_new trained on every class with the new recipe and the L2 pull towards phi_old at
    `name.weight`."""
    weight = name.weight
    new = run.preset.new
    check_same_size(run, "L2 regression")
    old = run.artifact("old")

    def fit(folder: Path):
        return fit_new_against_old(
            run, folder, old,
            lambda teacher: l2_regression_loss(new.training.label_smoothing, teacher, weight),
            desc=f"l2 regression w={weight:g}")

    return Artifact(str(name), "l2-regression", (new.model, new.training, weight), fit,
                    upstream=(old,))


def chosen_weight(run: RunContext) -> float:
    """The weight whose l2/old scores best on tune (BCT's `score`: the mean of top-1 and mAP),
    under the preset's distance (ties: the first listed)."""
    old = run.embeddings("old", "tune")

    def tune_score(weight: float) -> float:
        return score(run.evaluate(run.embeddings(L2Name(weight), "tune"), old, "tune")["all"])

    return max(run.preset.method("l2-regression").weights, key=tune_score)


@register_method("l2-regression", order=25, criteria=(("l2/old", "old/old"),), notation=(
    "`l2`", "a new model trained with its cross-entropy plus lambda times the mean squared "
            "distance of its embedding to the old model's (lambda chosen on `tune`)"))
def l2_regression_cases(run: RunContext) -> MethodCases:
    """The new model pulled towards the old embedding, at the weight chosen on tune."""
    own = L2Name(chosen_weight(run))
    query, old = run.embeddings(own, "test"), run.embeddings("old", "test")
    return MethodCases({"l2/old": (query, old), "l2/l2": (query, query)}, own)
