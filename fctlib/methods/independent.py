"""No compatibility: the old model (old classes) and the new model (every class), each trained on
its own with label-smoothed cross-entropy. Also the supervised fit every method builds on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ImageSet
from fctlib.data.splits import remap_labels, select_classes
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_chain,
    register_method,
)
from fctlib.models.backbones import build_model
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from fctlib.training.runtime import prepare_model, seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext


def fit_classifier(run: RunContext, folder: Path, build: Callable[[], nn.Module], images: ImageSet,
                   classes: list[int], loss: Callable, cfg: TrainConfig, *,
                   seed: int | None = None, desc: str) -> tuple[nn.Module, list[dict]]:
    """Seed, build the network, and train it on `images` with labels renumbered over `classes`
    (resuming from `folder/model.pt`); returns (model, history)."""
    seed = run.seed if seed is None else seed
    seed_everything(seed)  # the initialisation, whatever was trained or loaded before
    model = build()
    data = ImageBatches(remap_labels(images, classes), run.train_transform(),
                        path=run.preset.data.path)
    history = train(model, data, loss, cfg, seed=seed, checkpoint=folder / "model.pt",
                    device=run.device, desc=desc)
    return model, history


def frozen(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device` (in its layout, `prepare_model`) in eval mode without gradients: a
    teacher another model is trained against."""
    model = prepare_model(model, device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def check_same_size(run: RunContext, method: str) -> None:
    """A ValueError naming `method` unless the old and new embeddings have one size."""
    old, new = run.preset.old.model.embedding_dim, run.preset.new.model.embedding_dim
    if old != new:
        raise ValueError(f"{method} needs the old and new embedding sizes to match ({old} vs "
                         f"{new})")


def fit_new_against_old(run: RunContext, folder: Path, old: Artifact,
                        loss: Callable[[nn.Module], Callable], *, desc: str
                        ) -> tuple[nn.Module, list[dict]]:
    """A new model (the new recipe, every class) trained with `loss(the frozen old model)`."""
    new, s = run.preset.new, run.splits
    old_model = frozen(run.trained(old)[0], run.device)
    return fit_classifier(
        run, folder, lambda: build_model(new.model, s.bundle.channels, len(s.all_classes)),
        s.train, s.all_classes, loss(old_model), new.training, desc=desc)


def _classifier(run: RunContext, generation: str) -> Artifact:
    stage = run.preset.old if generation == "old" else run.preset.new
    s = run.splits
    classes = s.old_classes if generation == "old" else s.all_classes

    def fit(folder: Path):
        return fit_classifier(
            run, folder, lambda: build_model(stage.model, s.bundle.channels, len(classes)),
            select_classes(s.train, classes), classes,
            classification_loss(stage.training.label_smoothing), stage.training, desc=generation)

    return Artifact(generation, generation, (stage,), fit)


@artifact_kind("old")
def old_encoder(run: RunContext) -> Artifact:
    """phi_old: trained on the old classes' training images."""
    return _classifier(run, "old")


@artifact_kind("new")
def new_encoder(run: RunContext) -> Artifact:
    """phi_new: trained on every class, unmodified (independent of the old model)."""
    return _classifier(run, "new")


@register_method("independent", order=10, criteria=(("new/old", "old/old"),))
def independent_cases(run: RunContext) -> MethodCases:
    """The old model searches its gallery, the new one a fully backfilled one; `new/old` (where
    the sizes match) shows that independently trained models are incompatible."""
    old, new = run.embeddings("old", "test"), run.embeddings("new", "test")
    cases = {"old/old": (old, old), "new/new": (new, new)}
    if old.shape[1] == new.shape[1]:
        cases["new/old"] = (new, old)
    return MethodCases(cases, "new")


@multistep_chain("independent")
def independent_generation(steps: Generations, k: int) -> Artifact:
    """Generation k trained on its own (the suite's `new` model where it sees every class)."""
    run, classes, stage = steps.run, steps.generations[k], steps.stage(k)
    if k > 0 and classes == run.splits.all_classes:
        return run.artifact("new")  # the same recipe on every class

    def fit(folder: Path):
        return fit_classifier(
            run, folder, lambda: build_model(stage.model, run.splits.bundle.channels, len(classes)),
            select_classes(run.splits.train, classes), classes,
            classification_loss(stage.training.label_smoothing), stage.training,
            desc=f"independent generation {k + 1}")

    return Artifact(f"gen:independent:{k}", f"multistep-independent{k}", (classes, stage), fit)
