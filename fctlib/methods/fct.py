"""FCT's transformation h(old embedding, side-info) -> new embedding: its training, its artifacts
(TransformationName, `h:<dim>[,options]`), transformed galleries and cases (h itself:
`fctlib.models.transformation`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.data.splits import nested_share
from fctlib.experiment.config import SIDE_INFO_SOURCES
from fctlib.experiment.names import ArtifactName, Name, integer, number
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_case,
    parse_name,
    register_method,
)
from fctlib.methods.side_info import SideInfoName, simclr_artifact
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.training.config import TrainConfig
from fctlib.training.embed import embed
from fctlib.training.loop import train
from fctlib.training.runtime import seed_everything

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
        if self.source not in SIDE_INFO_SOURCES:
            raise ValueError(f"unknown side-info source {self.source!r}; choose one of "
                             f"{SIDE_INFO_SOURCES}")
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


def train_transformation(
    model: Transformation,
    old: np.ndarray,
    side: np.ndarray | None,
    new: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint=None,
    device=None,
) -> list[dict]:
    """Fit h by MSE to the new embeddings; BatchNorm statistics are frozen for the second half."""
    return train(
        model, TensorDataset(*training_tensors(model, old, side, new)), _mse_step, cfg, seed=seed,
        checkpoint=checkpoint, device=device, on_epoch_start=freeze_batchnorm_from(cfg.epochs // 2),
        desc="transformation",
    )


# -- in a run -------------------------------------------------------------------------------------
def training_features(run: RunContext, side: SideInfoName | None, target: Name = "new"
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(old, side, new) features of the training set, over `transformation.feature_views`
    augmented passes (`side`: None without side-info); `new` by the encoder `target`."""
    views = run.preset.transformation.feature_views
    if views == 1:
        side_train = run.embeddings(side, "train") if side else None
        return run.embeddings("old", "train"), side_train, run.embeddings(target, "train")
    encoders = [run.trained(name)[0] for name in ("old", target, side) if name]
    chunks = [embed(encoders, run.splits.train, run.train_transform(), device=run.device,
                    seed=run.seed * 1000 + v, desc=f"features view {v + 1}/{views}")
              for v in range(views)]
    old, new = (np.concatenate([c[i] for c in chunks]) for i in (0, 1))
    side_train = np.concatenate([c[2] for c in chunks]) if side else None
    return old, side_train, new


def share_rows(run: RunContext, share: float) -> np.ndarray:
    """Rows of the training set that fit h at a data share: `nested_share` of its labels with the
    run's seed (stratified by class, nested across shares)."""
    return nested_share(run.splits.train.labels, share, run.seed)


def _scaled(widths: list[int], factor: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * factor)) for w in widths)


@artifact_kind(TransformationName)
def transformation_artifact(run: RunContext, name: TransformationName) -> Artifact:
    """h fitted on the training set as `name` says (its side-info, share, widths and target)."""
    cfg, side = run.preset.transformation, name.side_info
    upstream = (run.artifact("old"), run.artifact(name.to))
    upstream += (run.artifact(side),) if side else ()

    def fit(folder: Path):
        old, side_train, new = training_features(run, side, name.to)
        if name.share != 1.0:
            rows = share_rows(run, name.share)
            rows = np.concatenate([rows + v * len(run.splits.train)
                                   for v in range(cfg.feature_views)])
            old, new = old[rows], new[rows]
            side_train = side_train[rows] if side_train is not None else None
        seed_everything(run.seed)
        model = Transformation(old.shape[1], name.side_dim, new.shape[1],
                               _scaled(cfg.branch_widths, name.width),
                               _scaled(cfg.mixer_widths, name.width))
        return model, train_transformation(model, old, side_train, new, cfg.training,
                                           seed=run.seed, checkpoint=folder / "model.pt",
                                           device=run.device)

    return Artifact(str(name), "transformation", (cfg, name.side_dim, name.share, name.width), fit,
                    upstream)


def transformed_gallery(run: RunContext, name: TransformationName, split: str = "test"
                        ) -> np.ndarray:
    """h(old embedding, side-info) of a split: the upgraded gallery, computed without images."""
    model, _ = run.trained(name)
    side = run.embeddings(name.side_info, split) if name.side_info else None
    return upgrade_embeddings(model, run.embeddings("old", split), side, device=run.device)


@register_method("fct", order=30, notation=(
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

    def fit(folder: Path):
        rows = np.flatnonzero(np.isin(run.splits.train.labels, steps.generations[b]))
        old, new, side = (run.embeddings(u, "train")[rows] for u in upstream)
        seed_everything(run.seed)
        model = Transformation(old.shape[1], side.shape[1], new.shape[1],
                               tuple(cfg.branch_widths), tuple(cfg.mixer_widths))
        return model, train_transformation(model, old, side, new, cfg.training, seed=run.seed,
                                           checkpoint=folder / "model.pt", device=run.device)

    return Artifact(f"gen:h:{a}:{b}", "multistep-h", (cfg, a, b), fit, upstream)


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
