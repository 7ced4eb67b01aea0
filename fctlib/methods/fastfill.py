"""FastFill (Jaeckle et al., ICLR 2023): the FCT transformation with an uncertainty head.

A scalar sigma is predicted from the transformed feature by one linear layer and weighs each
sample's loss l = mean over dimensions of (h(old, side) - new)^2 + the label-smoothed (0.1)
cross-entropy of the frozen new classifier on h(old, side), as
mean(0.5 * exp(-sigma) * l + mu * sigma), mu = 0.5. At its optimum sigma = log(l / (2 mu)): the
samples with the highest sigma are those whose transformed feature is expected to be worst (far
from the new embedding or misclassified by the new classifier), which partial backfilling
re-embeds first.

As the authors' code (apple/ml-fct FastFill, commit 1a7f8b5): `utils/getters.py` builds
`nn.MSELoss(reduction="none")` and `trainers/transformation_trainer.py` takes its `.mean(dim=1)`;
`configs/cifar100_fastfill_transformation.yaml` sets `LabelSmoothing` 0.1 (mu_disc 1) and
mu_uncertainty 0.5; `models/transformations.py` (MLP_BN_SIDE_PROJECTION_SIGMA) has
`uncertainty_head = nn.Linear(new_embedding_dim, 1)`; `utils/objectives.py` (UncertaintyLoss)
is 0.5 * exp(-sigma) * l + mu * sigma, averaged.

The model (`FastFill`), its saved file and its use on stored vectors are in
`fctlib.models.transformation`; this module trains it in a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.splits import remap_labels
from fctlib.evaluation.backfill import backfilled_top1_share, random_order
from fctlib.experiment.config import method_section
from fctlib.experiment.store import Artifact
from fctlib.methods.fct import (
    FreshViews,
    ViewCycle,
    embedding_sizes,
    fresh_views,
    squared_error,
    training_features,
    training_tensors,
)
from fctlib.methods.registry import MethodCases, register_method
from fctlib.methods.side_info import SideInfoName
from fctlib.models.transformation import FastFill, Transformation, upgrade_with_uncertainty
from fctlib.training.config import TrainConfig
from fctlib.training.loop import finished_history, train
from fctlib.training.runtime import seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext

MU, LABEL_SMOOTHING = 0.5, 0.1  # published: mu_uncertainty 0.5, LabelSmoothing 0.1 (mu_disc 1)


@method_section("fastfill")
@dataclass(frozen=True)
class FastFillConfig:
    """`methods.fastfill` of a preset: the transformation (the preset's widths) with an uncertainty
    head, its loss weight mu, the label smoothing of its classification term and its training."""

    training: TrainConfig
    mu: float = MU  # weight of sigma in mean(0.5 * exp(-sigma) * l + mu * sigma), as published
    label_smoothing: float = LABEL_SMOOTHING  # on the frozen new classifier's CE, as published
    head_width: int | None = None  # None: one linear layer to sigma (published); a width: an MLP

    def __post_init__(self):
        if self.mu <= 0 or (self.head_width is not None and self.head_width < 1):
            raise ValueError(f"need mu > 0 and head_width >= 1 or null, got {self.mu}, "
                             f"{self.head_width}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def per_sample_loss(feature: torch.Tensor, new: torch.Tensor, logits: torch.Tensor,
                    labels: torch.Tensor, label_smoothing: float = LABEL_SMOOTHING
                    ) -> torch.Tensor:
    """l per sample, in float32: the squared error (feature - new)^2 averaged over dimensions
    plus the label-smoothed cross-entropy of `logits` (the frozen new classifier on `feature`)."""
    squared = (feature.float() - new.float()).square().mean(1)
    return squared + F.cross_entropy(logits.float(), labels, reduction="none",
                                     label_smoothing=label_smoothing)


def fastfill_loss(feature: torch.Tensor, sigma: torch.Tensor, new: torch.Tensor,
                  logits: torch.Tensor, labels: torch.Tensor, *, mu: float = MU,
                  label_smoothing: float = LABEL_SMOOTHING) -> torch.Tensor:
    """mean(0.5 * exp(-sigma) * l + mu * sigma) with l = per_sample_loss(...), in float32."""
    loss = per_sample_loss(feature, new, logits, labels, label_smoothing)
    sigma = sigma.float()
    return (0.5 * torch.exp(-sigma) * loss + mu * sigma).mean()


def _loss_step(h: Transformation, classifier_weight: torch.Tensor, mu: float,
               label_smoothing: float):
    """FastFill's loss step on (old, side, new, labels) batches, through the frozen classifier."""
    if mu <= 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    weight = classifier_weight.detach().float().cpu()
    if weight.ndim != 2 or weight.shape[1] != h.new_dim:
        raise ValueError(f"classifier weight must be (classes, {h.new_dim}), "
                         f"got {tuple(weight.shape)}")
    on_device: dict[torch.device, torch.Tensor] = {}  # the frozen weight, copied once per device

    def step(model: nn.Module, batch) -> torch.Tensor:
        old, side, new, labels = batch
        feature, sigma = model(old, side)
        if feature.device not in on_device:
            on_device[feature.device] = weight.to(feature.device)
        logits = F.linear(feature.float(), on_device[feature.device])
        return fastfill_loss(feature, sigma, new, logits, labels, mu=mu,
                             label_smoothing=label_smoothing)

    return step


def train_fastfill(
    model: FastFill,
    old: np.ndarray,
    side: np.ndarray | None,
    new: np.ndarray,
    labels: np.ndarray,
    classifier_weight: torch.Tensor,
    cfg: TrainConfig,
    *,
    mu: float = MU,
    label_smoothing: float = LABEL_SMOOTHING,
    seed: int,
    views: int = 1,
    checkpoint=None,
    device=None,
) -> list[dict]:
    """Fit h and its uncertainty head by the FastFill loss against the frozen new classifier
    (`classifier_weight`, classes x new_dim, bias-free), `label_smoothing` on its cross-entropy;
    the arrays hold `views` passes over the items (ViewCycle); BatchNorm is frozen for the second
    half."""
    h = model.transformation
    tensors = training_tensors(h, old, side, new, np.asarray(labels, dtype=np.int64))
    labels_t = tensors[-1]
    if len(labels_t) and not 0 <= int(labels_t.min()) <= int(labels_t.max()) < len(
            classifier_weight):
        raise ValueError(f"labels must be class indices in [0, {len(classifier_weight)})")
    cycle = ViewCycle(views, cfg.epochs // 2)
    return train(model, cycle.dataset(tensors),
                 cycle.step(_loss_step(h, classifier_weight, mu, label_smoothing)), cfg,
                 seed=seed, checkpoint=checkpoint, device=device,
                 on_epoch_start=cycle.on_epoch_start, desc="fastfill", h_fit=True)


def train_fastfill_fresh(model: FastFill, views: FreshViews, classifier_weight: torch.Tensor,
                         cfg: TrainConfig, *, mu: float = MU,
                         label_smoothing: float = LABEL_SMOOTHING, seed: int, checkpoint=None,
                         device=None) -> list[dict]:
    """train_fastfill on images augmented afresh every batch (FreshViews with labels)."""
    return train(model, views.dataset,
                 views.step(_loss_step(model.transformation, classifier_weight, mu,
                                       label_smoothing)),
                 cfg, seed=seed, checkpoint=checkpoint, device=device,
                 on_epoch_start=views.on_epoch_start, desc="fastfill", h_fit=True)


def sigma_error_correlation(sigma: np.ndarray, transformed: np.ndarray, new: np.ndarray) -> float:
    """Spearman rank correlation between sigma and the real error ||new - h(old)|| of each item
    (1: sigma orders a gallery as the oracle does)."""
    error = np.linalg.norm(np.asarray(new, np.float64) - np.asarray(transformed, np.float64),
                           axis=1)
    return float(pd.Series(sigma).rank().corr(pd.Series(error).rank()))


# -- in a run -------------------------------------------------------------------------------------
def fastfill_artifact(run: RunContext, side_dim: int) -> Artifact:
    """FastFill's h (the transformation's widths) and uncertainty head, fitted on the training
    set against the frozen new classifier, on the features `transformation.feature_views` says;
    `side_dim=0`: without side-info."""
    cfg, h = run.preset.method("fastfill"), run.preset.transformation
    side_info = SideInfoName(side_dim) if side_dim else None
    upstream = (run.artifact("old"), run.artifact("new"))
    upstream += (run.artifact(side_info),) if side_info else ()

    def fit(folder: Path):
        train_set = remap_labels(run.splits.train, run.splits.all_classes)
        weight = run.trained("new")[0].classifier.weight
        options = {"mu": cfg.mu, "label_smoothing": cfg.label_smoothing, "seed": run.seed,
                   "checkpoint": folder / "model.pt", "device": run.device}

        def model_for(old_dim: int, new_dim: int) -> FastFill:
            seed_everything(run.seed)
            return FastFill(Transformation(old_dim, side_dim, new_dim, tuple(h.branch_widths),
                                           tuple(h.mixer_widths)), cfg.head_width)

        model = model_for(*embedding_sizes(run, list(upstream[:2])))
        history = finished_history(model, options["checkpoint"], cfg.training, seed=run.seed)
        if history is not None:
            return model, history
        if h.feature_views == 0:
            views = fresh_views(run, list(upstream), train_set, cfg.training, labels=True)
            return model, train_fastfill_fresh(model, views, weight, cfg.training, **options)
        old, new, *side = training_features(run, list(upstream))
        # seeded afresh after the features, where training has always started from
        model = model_for(old.shape[1], new.shape[1])
        return model, train_fastfill(
            model, old, side[0] if side else None, new,
            np.tile(train_set.labels, h.feature_views), weight, cfg.training,
            views=h.feature_views, **options)

    # recipe 2: mean (not summed) squared error, label smoothing, linear head (as published);
    # recipe 3 where h sees augmented features: one pass per epoch
    return Artifact(f"fastfill:{side_dim}", "fastfill",
                    (cfg, h.branch_widths, h.mixer_widths, h.feature_views, side_dim), fit,
                    upstream, recipe=2 if h.feature_views == 1 else 3)


def fastfill_gallery(run: RunContext, side_dim: int, split: str = "test"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """FastFill's transformed gallery of a split (from stored vectors) and each item's sigma."""
    model, _ = run.trained(fastfill_artifact(run, side_dim))
    side = run.embeddings(SideInfoName(side_dim), split) if side_dim else None
    return upgrade_with_uncertainty(model, run.embeddings("old", split), side, device=run.device)


def fit_error(run: RunContext, side_dim: int, split: str) -> float:
    """FastFill's h's mean squared error against the new model's embeddings of a split
    (unaugmented; train: what it was fitted to, tune: held out), as FCT's is measured
    (`fct.fit_error`)."""
    return squared_error(fastfill_gallery(run, side_dim, split)[0], run.embeddings("new", split))


def classifier_ce(features: np.ndarray, weight: torch.Tensor, labels: np.ndarray) -> float:
    """Mean cross-entropy (no smoothing) of a frozen bias-free classifier on `features`."""
    logits = torch.as_tensor(features, dtype=torch.float32) @ weight.detach().float().cpu().t()
    return float(F.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long)))


def gallery_diagnostics(run: RunContext, gallery: np.ndarray | None, *, seed: int
                        ) -> dict[str, float]:
    """How a transformed test gallery sits against the new model's embeddings: the frozen new
    classifier's cross-entropy on it (lower than on the new embeddings: fitted to the classifier
    rather than to the embeddings) and the share of new queries whose nearest item is a
    backfilled one at 5% random backfill (far above 5%: crowding); `gallery` None: the new
    embeddings themselves (their cross-entropy alone)."""
    new = run.embeddings("new", "test")
    labels = remap_labels(run.splits.test, run.splits.all_classes).labels
    weight = run.trained("new")[0].classifier.weight
    if gallery is None:
        return {"classifier_ce": classifier_ce(new, weight, labels)}
    share = backfilled_top1_share(new, gallery, new, random_order(len(new), seed), 0.05,
                                  distance=run.preset.distance)
    return {"classifier_ce": classifier_ce(gallery, weight, labels),
            "backfilled_top1_share_at_5pct": share}


# FastFill is ml-fct's code: L2 (`distance_metric: l2` in its eval configs at 1a7f8b5)
@register_method("fastfill", order=40, protocol=("l2",), notation=(
    "`fastfill/no-side`, `fastfill/side`", "the same with FastFill's h, nothing backfilled (its "
                                           "curves backfill a share at a time)"))
def fastfill_cases(run: RunContext) -> MethodCases:
    """FastFill at 0% backfill: new queries against its transformed gallery, without and with
    side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fastfill/no-side": (new, fastfill_gallery(run, 0)[0]),
                        "fastfill/side": (new, fastfill_gallery(run, dim)[0])}, "new")
