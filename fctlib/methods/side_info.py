"""Side-information: a self-supervised (SimCLR) model trained without labels on the old data, and
the ablation's other sources (a supervised model on the old classes, an untrained network)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.images import ImageSet, UnlabeledDataset
from fctlib.data.splits import select_classes
from fctlib.models.backbones import build_backbone
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig
from fctlib.training.loop import train


class SimCLRModel(nn.Module):
    """A backbone (its output is the side-info vector) and an MLP projection head for the loss."""

    def __init__(self, backbone: nn.Module, side_info_dim: int, projection_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Sequential(
            nn.Linear(side_info_dim, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, projection_dim),
        )

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
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, partner)


def simclr_loss(temperature: float) -> Callable:
    """Loss step of side-info training: NT-Xent between the projections of two views."""

    def step(model: nn.Module, batch) -> torch.Tensor:
        view1, view2 = batch
        return nt_xent(model(view1), model(view2), temperature)

    return step


def side_info_training_images(train_images: ImageSet, old_classes: list[int]) -> ImageSet:
    """The images side-info may learn from: the old model's training images, nothing else."""
    return select_classes(train_images, old_classes)


def train_side_info_model(
    images: ImageSet,
    spec: ModelSpec,
    pair_transform: Callable,
    cfg: TrainConfig,
    *,
    seed: int,
    temperature: float = 0.5,
    checkpoint=None,
    device=None,
) -> tuple[nn.Module, list[dict]]:
    """Train a SimCLR model on `images` without their labels; return its backbone and history.

    `pair_transform` maps one image to two augmented views; the side-info size is
    `spec.embedding_dim`.
    """
    torch.manual_seed(seed)
    model = SimCLRModel(build_backbone(spec, images.channels), spec.embedding_dim)
    history = train(
        model, UnlabeledDataset(images, pair_transform), simclr_loss(temperature), cfg,
        seed=seed, checkpoint=checkpoint, device=device, desc="side-info",
    )
    return model.backbone, history


def random_side_info_model(spec: ModelSpec, in_channels: int, *, seed: int) -> nn.Module:
    """The side-info network of `spec` at its random initialisation (from `seed`), untrained."""
    torch.manual_seed(seed)
    return build_backbone(spec, in_channels).eval()
