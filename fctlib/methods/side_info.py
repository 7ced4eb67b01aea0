"""Side-information: a self-supervised (SimCLR) model trained without labels on the old data, and
the ablation's other sources (SimCLR on another data set's images, a supervised model on the old
classes, an untrained network)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ImageSet
from fctlib.data.sources import in_format, load_dataset
from fctlib.data.spec import DatasetSpec
from fctlib.data.splits import select_classes
from fctlib.data.transforms import SimCLRTransform
from fctlib.experiment.config import SIDE_INFO_SOURCES
from fctlib.experiment.names import ArtifactName, integer
from fctlib.experiment.store import Artifact
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import artifact_kind
from fctlib.models.backbones import build_backbone, build_model
from fctlib.models.mlp import mlp_layers
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train
from fctlib.training.runtime import derived_seed, seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext

# Seed streams of the side-info ablation's networks: never the old model's initialisation, even
# where the side-info network has the old model's shape.
SIDE_SOURCE_STREAM = {"supervised": 1, "random": 2, "other-data": 3}


class SimCLRModel(nn.Module):
    """A backbone (its output is the side-info vector) and an MLP projection head for the loss."""

    def __init__(self, backbone: nn.Module, side_info_dim: int, projection_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Sequential(*mlp_layers([side_info_dim, 512, projection_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view must pick its partner among the other 2B - 1 views (cosine / T)."""
    if z1.shape != z2.shape:
        raise ValueError(f"the two views must have the same shape, got {z1.shape} and {z2.shape}")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    similarity = z @ z.t() / temperature
    similarity.fill_diagonal_(float("-inf"))
    n = len(z1)
    partner = torch.arange(2 * n, device=z.device).roll(n)  # made on the device: no copy
    return F.cross_entropy(similarity, partner)


def simclr_loss(temperature: float) -> Callable:
    """Loss step of side-info training: NT-Xent between the projections of two views."""

    def step(model: nn.Module, batch) -> torch.Tensor:
        view1, view2 = batch
        return nt_xent(model(view1), model(view2), temperature)

    return step


def side_info_training_images(train_images: ImageSet, classes: list[int]) -> ImageSet:
    """The images side-info may learn from: the training images of the old model's classes (of
    the first generation's, in multi-step updates), nothing else."""
    return select_classes(train_images, classes)


def train_side_info_model(
    images: ImageSet,
    spec: ModelSpec,
    pair_transform: SimCLRTransform,
    cfg: TrainConfig,
    *,
    seed: int,
    temperature: float = 0.5,
    checkpoint=None,
    device=None,
    data_path: str = "auto",
) -> tuple[nn.Module, list[dict]]:
    """Train a SimCLR model on `images` without their labels; return its backbone and history.

    `pair_transform` maps a batch to two augmented views; the side-info size is
    `spec.embedding_dim`; `data_path`: how the images are served (see `ImageBatches`).
    """
    torch.manual_seed(seed)
    model = SimCLRModel(build_backbone(spec, images.channels), spec.embedding_dim)
    history = train(
        model, ImageBatches(images, pair_transform, labels=False, path=data_path),
        simclr_loss(temperature), cfg,
        seed=seed, checkpoint=checkpoint, device=device, desc="side-info",
    )
    return model.backbone, history


def random_side_info_model(spec: ModelSpec, in_channels: int, *, seed: int) -> nn.Module:
    """The side-info network of `spec` at its random initialisation (from `seed`), untrained."""
    torch.manual_seed(seed)
    return build_backbone(spec, in_channels).eval()


def check_source(source: str) -> None:
    """A ValueError unless `source` is one of SIDE_INFO_SOURCES."""
    if source not in SIDE_INFO_SOURCES:
        raise ValueError(f"unknown side-info source {source!r}; choose one of "
                         f"{SIDE_INFO_SOURCES}")


@dataclass(frozen=True)
class SideInfoName(ArtifactName):
    """psi with `dim` outputs, from `source` (SIDE_INFO_SOURCES; SimCLR by default)."""

    dim: int
    source: str = "simclr"
    kind: ClassVar[str] = "side"
    form: ClassVar[str] = "side:<dim>[:<source>]"
    example: ClassVar[str] = "side:8:random"

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"the side-info size must be >= 1, got {self.dim}")
        check_source(self.source)

    @classmethod
    def parse(cls, arg: str) -> SideInfoName:
        dim, sep, source = arg.partition(":")
        return cls(integer(dim, "the side-info size"), *([source] if sep else []))

    def __str__(self) -> str:
        return f"side:{self.dim}" if self.source == "simclr" else f"side:{self.dim}:{self.source}"


def simclr_artifact(run: RunContext, name: str, classes: list[int], spec: ModelSpec) -> Artifact:
    """psi of `spec` trained by SimCLR on the training images of `classes` (without their
    labels), with the preset's side-info recipe."""
    cfg = run.preset.side_info
    size, channels, mean, std = run.image_stats

    def fit(folder: Path):
        images = side_info_training_images(run.splits.train, classes)
        seed_everything(run.seed)
        return train_side_info_model(
            images, spec, SimCLRTransform(size, channels, mean, std), cfg.training,
            seed=run.seed, temperature=cfg.temperature, checkpoint=folder / "model.pt",
            device=run.device, data_path=run.preset.data.path)

    return Artifact(name, "side", (spec, cfg.training, cfg.temperature, classes), fit)


def other_data_images(run: RunContext) -> ImageSet:
    """The training images of the preset's `other_data` set in this run's channels and
    size, at most as many as the default side-info learns from (a seeded draw, labels unused)."""
    name = run.preset.other_data
    bundle = load_dataset(DatasetSpec(name=name, cache_dir=run.preset.data.dataset.cache_dir))
    images = in_format(bundle.train, run.splits.bundle.channels, run.splits.bundle.image_size)
    budget = len(side_info_training_images(run.splits.train, run.splits.old_classes))
    if len(images) <= budget:
        return images
    draw = torch.Generator().manual_seed(derived_seed(run.seed, SIDE_SOURCE_STREAM["other-data"]))
    return images.subset(torch.randperm(len(images), generator=draw)[:budget].sort()[0].numpy())


def other_data_artifact(run: RunContext, name: str, spec: ModelSpec) -> Artifact:
    """psi of `spec` trained by SimCLR, with the preset's side-info recipe, on the images of
    another data set (`other_data_images`): side-info from data neither model sees, as FCT's
    CIFAR-100 run takes its side-info from an ImageNet SimCLR model."""
    cfg = run.preset.side_info
    size, channels, mean, std = run.image_stats
    other = run.preset.other_data

    def fit(folder: Path):
        seed_everything(run.seed)
        return train_side_info_model(
            other_data_images(run), spec, SimCLRTransform(size, channels, mean, std), cfg.training,
            seed=run.seed, temperature=cfg.temperature, checkpoint=folder / "model.pt",
            device=run.device, data_path=run.preset.data.path)

    return Artifact(name, "side-other", (spec, cfg.training, cfg.temperature, other), fit)


@artifact_kind(SideInfoName)
def side_info_encoder(run: RunContext, name: SideInfoName) -> Artifact:
    """psi with `name.dim` outputs: SimCLR on the old classes' training images, without labels;
    source `other-data`: SimCLR on another data set's images (`other_data_images`); `supervised`:
    the same network trained with the old classes' labels (the old model's recipe); `random`:
    that network untrained."""
    source = name.source
    spec = dataclasses.replace(run.preset.side_info.model, embedding_dim=name.dim)
    s = run.splits
    if source == "simclr":
        return simclr_artifact(run, str(name), s.old_classes, spec)
    if source == "other-data":
        return other_data_artifact(run, str(name), spec)
    seed = derived_seed(run.seed, SIDE_SOURCE_STREAM[source])
    if source == "random":
        return Artifact(str(name), "side-random", (spec, seed), lambda folder: (
            random_side_info_model(spec, s.bundle.channels, seed=seed), []))
    recipe = run.preset.old.training

    def fit(folder: Path):
        model, history = fit_classifier(
            run, folder, lambda: build_model(spec, s.bundle.channels, len(s.old_classes)),
            select_classes(s.train, s.old_classes), s.old_classes,
            classification_loss(recipe.label_smoothing), recipe, seed=seed,
            desc="side-info (supervised)")
        return model.backbone, history

    return Artifact(str(name), "side-supervised", (spec, recipe), fit)
