"""FCT's transformation h(old embedding, side-info) -> new embedding: its training, its artifacts
`h:<dim>[,options]`, transformed galleries and cases (h itself: `fctlib.models.transformation`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.data.splits import nested_share
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_case,
    register_method,
)
from fctlib.methods.side_info import side_encoder, simclr_artifact
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.training.config import TrainConfig
from fctlib.training.embed import embed
from fctlib.training.loop import train
from fctlib.training.runtime import seed_everything

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext

# h's ablation options as they appear in its artifact name (`h:<dim>,share=0.5`), with defaults
H_OPTIONS = {"source": "simclr", "share": 1.0, "width": 1.0, "to": "new"}


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
def training_features(run: RunContext, side_dim: int, source: str = "simclr", target: str = "new"
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(old, side, new) features of the training set, over `transformation.feature_views`
    augmented passes; `new` by the encoder `target`."""
    views = run.preset.transformation.feature_views
    side_name = side_encoder(side_dim, source) if side_dim else None
    if views == 1:
        side = run.embeddings(side_name, "train") if side_dim else None
        return run.embeddings("old", "train"), side, run.embeddings(target, "train")
    encoders = [run.trained(name)[0] for name in ("old", target, side_name) if name]
    chunks = [embed(encoders, run.splits.train, run.train_transform(), device=run.device,
                    seed=run.seed * 1000 + v, desc=f"features view {v + 1}/{views}")
              for v in range(views)]
    old, new = (np.concatenate([c[i] for c in chunks]) for i in (0, 1))
    side = np.concatenate([c[2] for c in chunks]) if side_dim else None
    return old, side, new


def share_rows(run: RunContext, share: float) -> np.ndarray:
    """Rows of the training set that fit h at a data share: `nested_share` of its labels with the
    run's seed (stratified by class, nested across shares)."""
    return nested_share(run.splits.train.labels, share, run.seed)


def _scaled(widths: list[int], factor: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * factor)) for w in widths)


def transformation_artifact(run: RunContext, side_dim: int, *, source: str = "simclr",
                            data_share: float = 1.0, width_factor: float = 1.0,
                            target: str = "new") -> Artifact:
    """h fitted on the training set; `side_dim=0` is the no-side-info transformation. Ablations:
    side-info from `source`, fitted on a `data_share` of the training set (share_rows), hidden
    widths times `width_factor`; `target`: the encoder h maps into (`new` or `cross:arch|loss`)."""
    if not 0.0 < data_share <= 1.0 or width_factor <= 0:
        raise ValueError(f"h's share must be in (0, 1] and its width factor above 0, got share "
                         f"{data_share} and width {width_factor}")
    cfg = run.preset.transformation
    side_name = side_encoder(side_dim, source)  # validates the source, used or not
    options = {"source": source if side_dim else "simclr", "share": data_share,
               "width": width_factor, "to": target}
    name = ",".join([f"h:{side_dim}", *(f"{k}={v}" for k, v in options.items()
                                        if v != H_OPTIONS[k])])
    upstream = (run.artifact("old"), run.artifact(target))
    upstream += (run.artifact(side_name),) if side_dim else ()

    def fit(folder: Path):
        old, side, new = training_features(run, side_dim, source, target)
        if data_share != 1.0:
            rows = share_rows(run, data_share)
            rows = np.concatenate([rows + v * len(run.splits.train)
                                   for v in range(cfg.feature_views)])
            old, new = old[rows], new[rows]
            side = side[rows] if side is not None else None
        seed_everything(run.seed)
        model = Transformation(old.shape[1], side_dim, new.shape[1],
                               _scaled(cfg.branch_widths, width_factor),
                               _scaled(cfg.mixer_widths, width_factor))
        return model, train_transformation(model, old, side, new, cfg.training, seed=run.seed,
                                           checkpoint=folder / "model.pt", device=run.device)

    return Artifact(name, "transformation", (cfg, side_dim, data_share, width_factor), fit,
                    upstream)


@artifact_kind("h", form="h:<side dim>[,source=..][,share=..][,width=..][,to=..]")
def transformation_from_name(run: RunContext, arg: str) -> Artifact:
    """The transformation named `h:<side dim>[,source=..][,share=..][,width=..][,to=..]`."""
    dim, *options = arg.split(",")
    malformed = [option for option in options if "=" not in option]
    if malformed:
        raise ValueError(f"h:{arg}: options are KEY=VALUE, got {malformed}")
    given = dict(option.split("=", 1) for option in options)
    unknown = sorted(set(given) - set(H_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in h:{arg}; options are {list(H_OPTIONS)}")
    return transformation_artifact(
        run, int(dim), source=given.get("source", "simclr"),
        data_share=float(given.get("share", 1.0)), width_factor=float(given.get("width", 1.0)),
        target=given.get("to", "new"))


def transformed_gallery(run: RunContext, side_dim: int, split: str = "test", **ablation
                        ) -> np.ndarray:
    """h(old embedding, side-info) of a split: the upgraded gallery, computed without images;
    `ablation`: transformation_artifact's keywords (source, data_share, width_factor, target)."""
    model, _ = run.trained(transformation_artifact(run, side_dim, **ablation))
    source = ablation.get("source", "simclr")
    side = run.embeddings(side_encoder(side_dim, source), split) if side_dim else None
    return upgrade_embeddings(model, run.embeddings("old", split), side, device=run.device)


@register_method("fct", order=30, notation=(
    "`fct/no-side`, `fct/side`", "not a model pair: `new`'s queries against the old gallery "
                                 "upgraded by h(old embedding) or h(old embedding, side-info)"))
def fct_cases(run: RunContext) -> MethodCases:
    """FCT: new queries against the transformed old gallery, without and with side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fct/no-side": (new, transformed_gallery(run, 0)),
                        "fct/side": (new, transformed_gallery(run, dim))}, "new")


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
