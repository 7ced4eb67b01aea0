"""FCT across architectures and losses: the new model differs from the old one beyond its classes
(another network family, or a normalized softmax), and h maps the old gallery into it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fctlib.experiment.config import method_section
from fctlib.experiment.names import ArtifactName
from fctlib.experiment.store import Artifact
from fctlib.methods.fct import TransformationName, transformed_gallery
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.loop import classification_loss

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext


@method_section("cross")
@dataclass(frozen=True)
class CrossConfig:
    """FCT across architectures and losses: the new model of another family (`model`, trained with
    the new recipe) and the normalized-softmax scale of the new model trained with another loss."""

    model: ModelSpec
    cosine_scale: float = 16.0

    def __post_init__(self):
        if self.cosine_scale <= 0:
            raise ValueError(f"cosine_scale must be > 0, got {self.cosine_scale}")

CROSS_CHANGES = ("arch", "loss")  # how a cross model differs from the new one


@dataclass(frozen=True)
class CrossName(ArtifactName):
    """A new model that differs from `new` beyond its classes: `change` is `arch` (another
    network family) or `loss` (a normalized softmax)."""

    change: str
    kind: ClassVar[str] = "cross"
    form: ClassVar[str] = "cross:arch|loss"
    example: ClassVar[str] = "cross:loss"

    def __post_init__(self):
        if self.change not in CROSS_CHANGES:
            raise ValueError(f"change must be one of {CROSS_CHANGES}, got {self.change!r}")

    @classmethod
    def parse(cls, arg: str) -> CrossName:
        return cls(arg)

    def __str__(self) -> str:
        return f"cross:{self.change}"


@artifact_kind(CrossName)
def cross_encoder(run: RunContext, name: CrossName) -> Artifact:
    """A new model trained with the new recipe on every class: `cross:arch`, the network of
    `methods.cross.model` (another family); `cross:loss`, the new network trained with a normalized
    softmax (cosine classifier of scale `methods.cross.cosine_scale`)."""
    new, s, change = run.preset.new, run.splits, name.change
    cross = run.preset.method("cross")
    spec = cross.model if change == "arch" else new.model
    scale = cross.cosine_scale if change == "loss" else None

    def fit(folder: Path):
        return fit_classifier(
            run, folder, lambda: build_model(spec, s.bundle.channels, len(s.all_classes),
                                             cosine_scale=scale),
            s.train, s.all_classes, classification_loss(new.training.label_smoothing),
            new.training, desc=f"new ({change})")

    return Artifact(str(name), f"new-{change}", (spec, new.training, scale), fit)


def _fct_to(run: RunContext, change: str) -> MethodCases:
    encoder, dim = CrossName(change), run.preset.side_info.model.embedding_dim
    query = run.embeddings(encoder, "test")
    return MethodCases(
        {f"fct-{change}/no-side": (query, transformed_gallery(
            run, TransformationName(0, to=encoder))),
         f"fct-{change}/side": (query, transformed_gallery(
             run, TransformationName(dim, to=encoder)))}, encoder)


@register_method("fct-arch", order=80, priced=False, notation=(
    "`fct-arch/...`, `fct-loss/...`", "the same into a new model of another architecture, or "
                                      "trained with another loss"))
def fct_cross_architecture(run: RunContext) -> MethodCases:
    """FCT to a new model of another family (`methods.cross.model`): h maps the old gallery into
    it."""
    return _fct_to(run, "arch")


@register_method("fct-loss", order=90, priced=False)
def fct_cross_loss(run: RunContext) -> MethodCases:
    """FCT to a new model trained with another loss (normalized softmax)."""
    return _fct_to(run, "loss")
