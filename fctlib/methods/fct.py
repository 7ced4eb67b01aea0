"""FCT's transformation h(old embedding, side-info) -> new embedding: its training, its artifacts
(TransformationName, `h:<dim>[,options]`), transformed galleries and cases (h itself:
`fctlib.models.transformation`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ImageSet
from fctlib.data.splits import nested_share
from fctlib.data.transforms import BatchTransform
from fctlib.experiment.names import ArtifactName, Name, integer, number
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_case,
    parse_name,
    register_method,
)
from fctlib.methods.side_info import SideInfoName, check_source, simclr_artifact
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.training.config import TrainConfig
from fctlib.training.loop import finished_history, train
from fctlib.training.runtime import autocast, prepare_model, seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext


@dataclass(frozen=True)
class TransformationName(ArtifactName):
    """h fitted on the training set with side-info of size `side_dim` (0: none) from `source`;
    the ablations' options: fitted on a `share` of the training set (`share_rows`), hidden widths
    times `width`, mapping into the encoder `to` (`new`, or `cross:arch|loss`)."""

    side_dim: int
    source: str = "simclr"
    share: float = 1.0
    width: float = 1.0
    to: Name = "new"
    kind: ClassVar[str] = "h"
    form: ClassVar[str] = "h:<side dim>[,source=..][,share=..][,width=..][,to=..]"
    example: ClassVar[str] = "h:8,source=random,share=0.5,width=2.0,to=cross:arch"

    def __post_init__(self):
        if self.side_dim < 0:
            raise ValueError(f"h's side-info size must be >= 0, got {self.side_dim}")
        check_source(self.source)
        if not 0.0 < self.share <= 1.0 or self.width <= 0:
            raise ValueError(f"h's share must be in (0, 1] and its width factor above 0, got "
                             f"share {self.share} and width {self.width}")
        if isinstance(self.to, str):  # a target's string form: its structured name
            object.__setattr__(self, "to", parse_name(self.to))

    @property
    def side_info(self) -> SideInfoName | None:
        """The side-info it is fitted with (None: without)."""
        return SideInfoName(self.side_dim, self.source) if self.side_dim else None

    @classmethod
    def parse(cls, arg: str) -> TransformationName:
        dim, *options = arg.split(",")
        malformed = [option for option in options if "=" not in option]
        if malformed:
            raise ValueError(f"options are KEY=VALUE, got {malformed}")
        given = dict(option.split("=", 1) for option in options)
        known = [f.name for f in fields(cls)][1:]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; options are {known}")
        given.update({key: number(given[key], key) for key in ("share", "width") if key in given})
        return cls(integer(dim, "h's side-info size"), **given)

    def __str__(self) -> str:
        options = {f.name: (getattr(self, f.name), f.default) for f in fields(self)[1:]}
        if not self.side_dim:  # no side-info: its source is moot
            options.pop("source")
        return ",".join([f"h:{self.side_dim}", *(f"{key}={value}" for key, (value, default)
                                                 in options.items() if value != default)])


def _mse_step(model: nn.Module, batch) -> torch.Tensor:
    old, side, new = batch
    return F.mse_loss(model(old, side), new)


def freeze_batchnorm_from(epoch_to_freeze: int):
    """An epoch-start hook freezing BatchNorm statistics (eval mode) from a given epoch on."""

    def hook(model: nn.Module, epoch: int) -> None:
        if epoch >= epoch_to_freeze:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    return hook


def training_tensors(model: Transformation, old: np.ndarray, side: np.ndarray | None,
                     new: np.ndarray, *extra: np.ndarray) -> list[torch.Tensor]:
    """(old, side, new, *extra) as tensors of equal length for fitting h; without side-info the
    old embeddings stand in for it (as `Transformation.forward` does)."""
    old_t = torch.as_tensor(old, dtype=torch.float32)
    side_t = old_t if side is None or model.side_info_dim == 0 else torch.as_tensor(
        side, dtype=torch.float32)
    tensors = [old_t, side_t, torch.as_tensor(new, dtype=torch.float32),
               *(torch.as_tensor(x) for x in extra)]
    if len({len(t) for t in tensors}) != 1:
        names = ["old", "side", "new", *(f"extra {i}" for i in range(len(extra)))]
        sizes = ", ".join(f"{n} {len(t)}" for n, t in zip(names, tensors, strict=True))
        raise ValueError(f"lengths differ: {sizes}")
    return tensors


class ViewCycle:
    """Features of `views` augmented passes over the same items, one pass per epoch (epoch e fits
    pass e mod `views`): each epoch shows every item once, as ml-fct's per-batch augmentation
    does; BatchNorm statistics are frozen from epoch `freeze_from` on."""

    def __init__(self, views: int, freeze_from: int):
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.views, self.view = views, 0
        self._freeze = freeze_batchnorm_from(freeze_from)

    def dataset(self, tensors: list[torch.Tensor]) -> TensorDataset:
        """The tensors' rows (pass after pass) as items with their passes side by side."""
        items, left = divmod(len(tensors[0]), self.views)
        if left:
            raise ValueError(f"{len(tensors[0])} rows are not {self.views} passes of equal length")
        return TensorDataset(*(t.reshape(self.views, items, *t.shape[1:]).transpose(0, 1)
                               .contiguous() for t in tensors))

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        self._freeze(model, epoch)
        self.view = epoch % self.views

    def step(self, loss_step: Callable) -> Callable:
        """`loss_step` on this epoch's pass of each batch."""
        def step(model: nn.Module, batch) -> torch.Tensor:
            return loss_step(model, [t[:, self.view] for t in batch])

        return step


def train_transformation(
    model: Transformation,
    old: np.ndarray,
    side: np.ndarray | None,
    new: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int,
    views: int = 1,
    checkpoint=None,
    device=None,
    on_epoch_start: Callable[[nn.Module, int], None] | None = None,
) -> list[dict]:
    """Fit h by MSE to the new embeddings; the arrays hold `views` passes over the items, pass
    after pass (ViewCycle); BatchNorm statistics are frozen for the second half.
    `on_epoch_start(model, epoch)` sees the model at each epoch's start, before the freeze."""
    cycle = ViewCycle(views, cfg.epochs // 2)

    def epoch_start(net: nn.Module, epoch: int) -> None:
        if on_epoch_start:
            on_epoch_start(net, epoch)
        cycle.on_epoch_start(net, epoch)

    return train(
        model, cycle.dataset(training_tensors(model, old, side, new)), cycle.step(_mse_step), cfg,
        seed=seed, checkpoint=checkpoint, device=device, on_epoch_start=epoch_start,
        desc="transformation", h_fit=True,
    )


class FreshViews:
    """h's training data as ml-fct makes it: every batch's images augmented afresh and embedded by
    the frozen `encoders` (old, target, and side-info when there is one) before the loss step,
    which gets (old, side, new[, labels]); BatchNorm statistics frozen from epoch `freeze_from`."""

    def __init__(self, images: ImageSet, transform: BatchTransform, encoders: list[nn.Module],
                 device: torch.device, freeze_from: int, *, labels: bool = False,
                 path: str = "auto"):
        self.dataset = ImageBatches(images, transform, labels=labels, path=path)
        self.encoders = [prepare_model(e, device).eval() for e in encoders]
        self.labels, self.on_epoch_start = labels, freeze_batchnorm_from(freeze_from)

    def step(self, loss_step: Callable) -> Callable:
        """`loss_step` on each batch's features."""
        def step(model: nn.Module, batch) -> torch.Tensor:
            images = batch[0] if self.labels else batch
            with torch.no_grad(), autocast(images.device):
                outputs = [e(images) for e in self.encoders]
            old, new, *side = ((y[0] if isinstance(y, tuple) else y).float() for y in outputs)
            return loss_step(model, [old, side[0] if side else old, new,
                                     *([batch[1]] if self.labels else [])])

        return step


def train_transformation_fresh(model: Transformation, views: FreshViews, cfg: TrainConfig, *,
                               seed: int, checkpoint=None, device=None) -> list[dict]:
    """Fit h by MSE to the new embeddings of images augmented afresh every batch (FreshViews)."""
    return train(model, views.dataset, views.step(_mse_step), cfg, seed=seed,
                 checkpoint=checkpoint, device=device, on_epoch_start=views.on_epoch_start,
                 desc="transformation", h_fit=True)


# -- in a run -------------------------------------------------------------------------------------
def training_features(run: RunContext, encoders: list[Name | Artifact]) -> list[np.ndarray]:
    """Each encoder's features of the training set for fitting h: the cached unaugmented
    embeddings when `transformation.feature_views` is 1, else that many augmented passes (pass
    after pass, every encoder on the same augmented images)."""
    views = run.preset.transformation.feature_views
    if views == 1:
        return [run.embeddings(e, "train") for e in encoders]
    chunks = [run.augmented_embeddings(encoders, v) for v in range(views)]
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(encoders))]


def view_rows(rows: np.ndarray, items: int, views: int) -> np.ndarray:
    """`rows` of `items` in each of `views` passes stored pass after pass."""
    return np.concatenate([rows + v * items for v in range(views)])


def embedding_sizes(run: RunContext, encoders: list[Name | Artifact]) -> list[int]:
    """Each encoder's embedding size, read from its cached test embeddings (which evaluation
    needs anyway): what an h fitted on fresh features is built for before any feature exists."""
    return [run.embeddings(e, "test").shape[1] for e in encoders]


def fresh_views(run: RunContext, encoders: list[Name | Artifact], images: ImageSet,
                cfg: TrainConfig, *, labels: bool = False) -> FreshViews:
    """FreshViews of `images` with the run's training augmentation and trained `encoders`."""
    return FreshViews(images, run.train_transform(), [run.trained(e)[0] for e in encoders],
                      run.device, cfg.epochs // 2, labels=labels, path=run.preset.data.path)


def share_rows(run: RunContext, share: float) -> np.ndarray:
    """Rows of the training set that fit h at a data share: `nested_share` of its labels with the
    run's seed (stratified by class, nested across shares)."""
    return nested_share(run.splits.train.labels, share, run.seed)


def _scaled(widths: list[int], factor: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * factor)) for w in widths)


@artifact_kind(TransformationName)
def transformation_artifact(run: RunContext, name: TransformationName) -> Artifact:
    """h fitted on the training set as `name` says (its side-info, share, widths and target),
    on the features `transformation.feature_views` says (0: fresh augmentations every batch)."""
    cfg, side = run.preset.transformation, name.side_info
    encoders = [run.artifact("old"), run.artifact(name.to), *([run.artifact(side)] if side else [])]

    def model_for(old_dim: int, new_dim: int) -> Transformation:
        seed_everything(run.seed)
        return Transformation(old_dim, name.side_dim, new_dim,
                              _scaled(cfg.branch_widths, name.width),
                              _scaled(cfg.mixer_widths, name.width))

    def fit(folder: Path):
        train_set, checkpoint = run.splits.train, folder / "model.pt"
        model = model_for(*embedding_sizes(run, encoders[:2]))
        history = finished_history(model, checkpoint, cfg.training, seed=run.seed)
        if history is not None:
            return model, history
        rows = share_rows(run, name.share) if name.share != 1.0 else None
        if cfg.feature_views == 0:
            images = train_set if rows is None else train_set.subset(rows)
            return model, train_transformation_fresh(
                model, fresh_views(run, encoders, images, cfg.training), cfg.training,
                seed=run.seed, checkpoint=checkpoint, device=run.device)
        old, new, *side_train = training_features(run, encoders)
        if rows is not None:
            rows = view_rows(rows, len(train_set), cfg.feature_views)
            old, new, side_train = old[rows], new[rows], [x[rows] for x in side_train]
        # seeded afresh after the features, where training has always started from
        model = model_for(old.shape[1], new.shape[1])
        return model, train_transformation(
            model, old, side_train[0] if side_train else None, new, cfg.training, seed=run.seed,
            views=cfg.feature_views, checkpoint=checkpoint, device=run.device)

    # recipe 2 where h sees augmented features: one pass per epoch (before: every cached pass)
    return Artifact(str(name), "transformation", (cfg, name.side_dim, name.share, name.width), fit,
                    tuple(encoders), recipe=1 if cfg.feature_views == 1 else 2)


def transformed_gallery(run: RunContext, name: TransformationName, split: str = "test"
                        ) -> np.ndarray:
    """h(old embedding, side-info) of a split: the upgraded gallery, computed without images."""
    model, _ = run.trained(name)
    side = run.embeddings(name.side_info, split) if name.side_info else None
    return upgrade_embeddings(model, run.embeddings("old", split), side, device=run.device)


def squared_error(upgraded: np.ndarray, target: np.ndarray) -> float:
    """Mean over items and coordinates of (upgraded - target)^2, in float64: h's training loss."""
    return float(np.mean(np.square(upgraded.astype(np.float64) - target.astype(np.float64))))


def fit_error(run: RunContext, name: TransformationName, split: str) -> float:
    """h's mean squared error on a split's unaugmented embeddings (train: what it was fitted to;
    tune: held out), as its training loss measures it."""
    return squared_error(transformed_gallery(run, name, split), run.embeddings(name.to, split))


# ml-fct evaluates with L2 (`distance_metric: l2` in its eval configs at fa1f8d1)
@register_method("fct", order=30, protocol=("l2",), notation=(
    "`fct/no-side`, `fct/side`", "not a model pair: `new`'s queries against the old gallery "
                                 "upgraded by h(old embedding) or h(old embedding, side-info)"))
def fct_cases(run: RunContext) -> MethodCases:
    """FCT: new queries against the transformed old gallery, without and with side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fct/no-side": (new, transformed_gallery(run, TransformationName(0))),
                        "fct/side": (new, transformed_gallery(run, TransformationName(dim)))},
                       "new")


# -- the multi-step experiment: galleries carried across generations ---------------------------
def generation_side_info(steps: Generations) -> Artifact:
    """psi: SimCLR on the first generation's training images, frozen for every later one."""
    run = steps.run
    return simclr_artifact(run, "gen:side", steps.generations[0], run.preset.side_info.model)


def generation_transformation(steps: Generations, a: int, b: int) -> Artifact:
    """h(a -> b): generation a's embedding and side-info to generation b's (the independent
    models), fitted on the training images of generation b's classes."""
    run, cfg = steps.run, steps.run.preset.transformation
    upstream = (steps.generation("independent", a), steps.generation("independent", b),
                generation_side_info(steps))

    def model_for(old_dim: int, new_dim: int, side_dim: int) -> Transformation:
        seed_everything(run.seed)
        return Transformation(old_dim, side_dim, new_dim, tuple(cfg.branch_widths),
                              tuple(cfg.mixer_widths))

    def fit(folder: Path):
        train_set, checkpoint = run.splits.train, folder / "model.pt"
        model = model_for(*embedding_sizes(run, list(upstream)))
        history = finished_history(model, checkpoint, cfg.training, seed=run.seed)
        if history is not None:
            return model, history
        rows = np.flatnonzero(np.isin(train_set.labels, steps.generations[b]))
        if cfg.feature_views == 0:
            views = fresh_views(run, list(upstream), train_set.subset(rows), cfg.training)
            return model, train_transformation_fresh(model, views, cfg.training, seed=run.seed,
                                                     checkpoint=checkpoint, device=run.device)
        rows = view_rows(rows, len(train_set), cfg.feature_views)
        old, new, side = (x[rows] for x in training_features(run, list(upstream)))
        # seeded afresh after the features, where training has always started from
        model = model_for(old.shape[1], new.shape[1], side.shape[1])
        return model, train_transformation(model, old, side, new, cfg.training, seed=run.seed,
                                           views=cfg.feature_views, checkpoint=checkpoint,
                                           device=run.device)

    # recipe 2 where h sees augmented features: one pass per epoch
    return Artifact(f"gen:h:{a}:{b}", "multistep-h", (cfg, a, b), fit, upstream,
                    recipe=1 if cfg.feature_views == 1 else 2)


def generation_fit_errors(steps: Generations) -> dict[str, dict[str, float]]:
    """Each h(a -> b) of the experiment (a < b): its mean squared error on generation b's classes'
    unaugmented embeddings of train (what it was fitted to) and of tune (held out), keyed
    `a->b` (generations from 0)."""
    run, side_info = steps.run, generation_side_info(steps)
    errors = {}
    for b in range(1, len(steps.generations)):
        for a in range(b):
            h, _ = run.trained(generation_transformation(steps, a, b))
            errors[f"{a}->{b}"] = {}
            for split in ("train", "tune"):
                rows = np.isin(run.splits.split(split).labels, steps.generations[b])
                old = run.embeddings(steps.generation("independent", a), split)[rows]
                side = run.embeddings(side_info, split)[rows]
                target = run.embeddings(steps.generation("independent", b), split)[rows]
                errors[f"{a}->{b}"][split] = squared_error(
                    upgrade_embeddings(h, old, side, device=run.device), target)
    return errors


def carried_gallery(steps: Generations, j: int, i: int, chained: bool) -> np.ndarray:
    """Generation j's test gallery carried into generation i's space: through every
    intermediate h (chained) or one h(j -> i) (direct)."""
    run = steps.run
    side = run.embeddings(generation_side_info(steps), "test")
    gallery = run.embeddings(steps.generation("independent", j), "test")
    hops = [(a, a + 1) for a in range(j, i)] if chained else [(j, i)]
    for a, b in hops:
        h, _ = run.trained(generation_transformation(steps, a, b))
        gallery = upgrade_embeddings(h, gallery, side, device=run.device)
    return gallery


def _fct_case(steps: Generations, i: int, j: int, chained: bool) -> tuple[np.ndarray, np.ndarray]:
    query = steps.run.embeddings(steps.generation("independent", i), "test")
    return query, (query if i == j else carried_gallery(steps, j, i, chained))


@multistep_case("fct-chained", order=30)
def fct_chained_case(steps: Generations, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Generation i's independent queries against gallery j carried by h(j -> j+1), ...,
    h(i-1 -> i)."""
    return _fct_case(steps, i, j, chained=True)


@multistep_case("fct-direct", order=31)
def fct_direct_case(steps: Generations, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Generation i's independent queries against gallery j carried by one h(j -> i)."""
    return _fct_case(steps, i, j, chained=False)
