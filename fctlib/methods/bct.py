"""BCT (Shen et al., CVPR 2020) in a run: each published variant (`bct_variants.py`) at each
weight of the preset's sweep is an artifact (BCTName, `bct:<variant>:<weight>`), the (variant,
weight) used is chosen on the tune split under its authors' distance (PROTOCOL), `bct_diagnostic.py`
tells how each construction's rows classify the old model's own features (no training), and
`methods.bct` holds its settings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fctlib.data.splits import select_classes
from fctlib.evaluation.distances import DISTANCES
from fctlib.experiment.config import method_section
from fctlib.experiment.names import ArtifactName, Name, number
from fctlib.experiment.store import Artifact
from fctlib.methods.bct_variants import (
    RECORD_ONLY,
    VARIANTS,
    build_bct_model,
    influence_rows,
    variant_loss,
)
from fctlib.methods.independent import check_same_size, fit_classifier
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_chain,
    register_method,
)
from fctlib.training.config import TrainConfig

if TYPE_CHECKING:
    from fctlib.experiment.config import Preset
    from fctlib.experiment.context import Generations, RunContext


# The distance BCT's authors retrieve with: openBCT ranks L2-normalised features
# (models/resnet.py:258-268, evaluate/evaluators.py:48-63) and BT-2 evaluates with cosine
# (configs/cifar100_eval_old_new.yaml at 8282360). Each variant is chosen and headlined under it.
PROTOCOL = ("cosine",)


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
                             f"{tuple(VARIANTS)}; got variant {self.variant!r}")
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


@dataclass(frozen=True)
class BCTSweep:
    """One BCT variant and the influence-loss weights it is trained with."""

    variant: str
    weights: list[float]

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {self.variant!r}")
        if not self.weights or min(self.weights) < 0 or len(set(self.weights)) != len(
                self.weights):
            raise ValueError(f"weights of {self.variant} must be distinct values >= 0, got "
                             f"{self.weights}")


@method_section("bct")
@dataclass(frozen=True)
class BCTConfig:
    """`methods.bct` of a preset: the variants and weights trained and compared on the tune split
    (the one used is chosen there, in the multi-step chain too), the normalised-softmax scale of
    `openbct-normsm` and the optimisation of `bt2` (the other variants use the new model's
    recipe)."""

    sweep: list[BCTSweep]
    bt2_training: TrainConfig
    normsm_scale: float = 30.0

    def __post_init__(self):
        variants = [s.variant for s in self.sweep]
        if len(set(variants)) != len(variants):
            raise ValueError(f"sweep lists a variant more than once: {variants}")
        if not set(variants) - set(RECORD_ONLY):
            raise ValueError(f"sweep needs a variant that can be chosen (not only "
                             f"{RECORD_ONLY}), got {variants}")
        if self.normsm_scale <= 0:
            raise ValueError(f"normsm_scale must be > 0, got {self.normsm_scale}")
        if not any(VARIANTS[v].chainable and VARIANTS[v].choosable for v in variants):
            raise ValueError(f"sweep needs a variant the multi-step chain can train (not only "
                             f"a normalised softmax), got {variants}")

    def models(self) -> list[tuple[str, float]]:
        """Every (variant, weight) of the sweep, in preset order."""
        return [(s.variant, w) for s in self.sweep for w in s.weights]

    def training(self, variant: str, new: TrainConfig) -> TrainConfig:
        """The optimisation a variant's model is trained with (`new`: the new model's)."""
        return self.bt2_training if variant == "bt2" else new


@artifact_kind(BCTName)
def bct_encoder(run: RunContext, name: BCTName) -> Artifact:
    """phi_new trained with BCT's influence loss: the variant's rows, model and recipe
    (`methods.bct.bt2_training` for bt2, the new model's otherwise)."""
    variant, weight = VARIANTS[name.variant], name.weight
    new, s, cfg = run.preset.new, run.splits, run.preset.method("bct")
    check_same_size(run, "BCT")
    training = cfg.training(variant.name, new.training)
    scale = cfg.normsm_scale if variant.normsm else None
    old = run.artifact("old")

    def fit(folder: Path):
        old_weight, covered = influence_rows(
            variant, run.trained(old)[0].classifier.weight, s.old_classes, s.bundle.num_classes,
            run.embeddings(old, "train"), s.train.labels, seed=run.seed)
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


def matched_encoder(preset: Preset, variant: str) -> Name:
    """The independent new model a variant's price is measured against: trained as the variant
    trains its own (network, loss, optimiser) without the influence loss; `new` itself where they
    coincide, else the variant at weight 0."""
    v, cfg, new = VARIANTS[variant], preset.method("bct"), preset.new.training
    plain = not (v.normalize or v.normsm) and cfg.training(variant, new) == new
    return "new" if plain else BCTName(variant, 0.0)


def variant_points(run: RunContext, splits: tuple[str, ...] = ("tune", "test"),
                   distances: tuple[str, ...] = DISTANCES) -> list[dict]:
    """Every (variant, weight) of the preset's sweep on each split under each distance: bct/old,
    bct/bct, the independent old/old and new/new, the variant's matched new model on its own
    (matched/matched, `matched_encoder`; metrics of all queries), and the mean norm of the BCT
    embeddings over the old model's; `key`, the BCT model's store key."""
    points, own = [], {}  # own: (encoder, split) -> its own retrieval under each distance

    def alone(name: Name, split: str) -> dict:
        if (name, split) not in own:
            x = run.embeddings(name, split)
            own[name, split] = {d: run.evaluate(x, x, split, d)["all"] for d in distances}
        return own[name, split]

    for split in splits:
        old = run.embeddings("old", split)
        old_norm = float(np.linalg.norm(old, axis=1).mean())
        for variant, weight in run.preset.method("bct").models():
            bct = run.embeddings(BCTName(variant, weight), split)
            ratio = float(np.linalg.norm(bct, axis=1).mean()) / max(old_norm, 1e-12)
            matched = alone(matched_encoder(run.preset, variant), split)
            key = run.artifact_key(BCTName(variant, weight))
            for d in distances:
                points.append({"variant": variant, "weight": float(weight), "split": split,
                               "distance": d, "bct/old": run.evaluate(bct, old, split, d)["all"],
                               "bct/bct": run.evaluate(bct, bct, split, d)["all"],
                               "old/old": alone("old", split)[d],
                               "new/new": alone("new", split)[d],
                               "matched/matched": matched[d], "norm_ratio": ratio, "key": key})
    return points


def choose_from(points: list[dict], distance: str, *, chainable: bool = False
                ) -> tuple[str, float]:
    """The (variant, weight) with the best bct/old score on the tune split under `distance`,
    among the variants that may be chosen (`chainable`: and that the multi-step chain can train;
    ties: the first in sweep order)."""
    tune = [p for p in points if p["split"] == "tune" and p["distance"] == distance
            and VARIANTS[p["variant"]].choosable
            and (VARIANTS[p["variant"]].chainable or not chainable)]
    if not tune:
        raise ValueError(f"no tune-split point under {distance!r} of a variant that may be chosen"
                         + (" and chained" if chainable else ""))
    best = max(tune, key=lambda p: score(p["bct/old"]))
    return best["variant"], best["weight"]


def recorded_points(run: RunContext) -> list[dict] | None:
    """The tune points of this seed's BCT record (notebook 04's) where they measured this run's
    sweep: one per model of the preset's sweep and distance, each model's key this run's (the
    same settings, upstream models, data and seed); else None (no record, another sweep, or a
    record of older code, whose points carry no key), with a warning that says why where a
    record was there (`unread_because`)."""
    record = run.seed_record("bct")
    if record is None:
        return None
    keys = {(variant, float(weight)): run.artifact_key(BCTName(variant, weight))
            for variant, weight in run.preset.method("bct").models()}
    tune = [p.to_json() for p in record.points if p.split == "tune"]
    measured = {(p["variant"], p["weight"], p["distance"]): p.get("key") for p in tune}
    wanted = {(v, w, d): key for (v, w), key in keys.items() for d in DISTANCES}
    if measured == wanted:
        return tune
    warnings.warn(f"seed {run.seed}'s BCT record is not read, so the sweep is trained to choose "
                  f"from: {unread_because(run, record.data, measured, wanted)}", stacklevel=2)
    return None


def unread_because(run: RunContext, data: dict[str, str], measured: dict, wanted: dict) -> str:
    """Why a BCT record's tune points (`measured`: (variant, weight, distance) -> model key, from
    a record of `data`) are not this run's sweep (`wanted`)."""
    if measured.keys() != wanted.keys():
        def models(points: dict) -> str:
            return ", ".join(sorted({str(BCTName(v, w)) for v, w, _ in points}))
        return f"it measured another sweep ({models(measured)}; the preset's: {models(wanted)})"
    if not all(measured.values()):
        return "its points name no model keys (older code wrote it)"
    if not data:
        return ("its models' keys differ from this run's, and it names no data to tell whether "
                "the data or the models' settings differ (older code wrote it)")
    if data["key"] != run.data_key():
        differ = [split for split in ("train", "test") if data[split] != run.data_digests[split]]
        if not differ:
            return "it was made from the same images under another data config or class split"
        digests = "; ".join(f"{split}: {data[split][:12]} there, {run.data_digests[split][:12]} "
                            "here" for split in differ)
        return (f"it was made from other data: the {' and '.join(differ)} images or labels "
                f"differ (another data set, or the same files decoded to other pixels; {digests})")
    names = sorted({str(BCTName(v, w)) for (v, w, d), key in wanted.items()
                    if measured[v, w, d] != key})
    return (f"the same data, but other keys for {', '.join(names)}: other settings, theirs or "
            "their upstream models' (old, new), a recipe version, or bfloat16 on one side")


def choose(run: RunContext, *, chainable: bool = False) -> tuple[str, float, list[dict]]:
    """The variant and weight chosen on the tune split under BCT's distance (PROTOCOL;
    `chainable`: among those the multi-step chain can train), and the tune points (both
    distances) the choice was made from: those notebook 04 recorded for this seed where they
    measured this run's sweep (`recorded_points`: a machine without the sweep's models chooses
    as 04 chose, untrained), else the sweep's, trained where missing."""
    points = recorded_points(run)
    if points is None:
        points = variant_points(run, splits=("tune",))
    variant, weight = choose_from(points, PROTOCOL[0], chainable=chainable)
    return variant, weight, points


def chosen_artifact(run: RunContext) -> BCTName:
    """The artifact name of the (variant, weight) chosen on tune."""
    variant, weight, _ = choose(run)
    return BCTName(variant, weight)


@register_method("bct", order=20, criteria=(("bct/old", "old/old"),), protocol=PROTOCOL,
                 notation=(
    "`bct`", "a new model trained with BCT's influence loss through the old classifier (its "
             "variant and weight chosen on `tune`)"))
def bct_cases(run: RunContext) -> MethodCases:
    """BCT at the variant and influence-loss weight chosen on the tune split (choose)."""
    own = chosen_artifact(run)
    query, old = run.embeddings(own, "test"), run.embeddings("old", "test")
    return MethodCases({"bct/old": (query, old), "bct/bct": (query, query)}, own)


@multistep_chain("bct")
def bct_generation(steps: Generations, k: int) -> Artifact:
    """Generation k trained with BCT's influence loss (the variant and weight chosen on tune among
    those the chain can train, with that variant's recipe and network) through generation k-1;
    the chain starts from an ordinary model."""
    if k == 0:
        return steps.generation("independent", 0)
    run, classes, stage = steps.run, steps.generations[k], steps.stage(k)
    previous = steps.generation("bct", k - 1)
    cfg = run.preset.method("bct")
    variant, weight, _ = choose(run, chainable=True)
    training = cfg.training(variant, stage.training)
    channels = run.splits.bundle.channels

    def fit(folder: Path):
        rows, covered = influence_rows(
            variant, run.trained(previous)[0].classifier.weight, steps.generations[k - 1],
            len(steps.generations[-1]), run.embeddings(previous, "train"),
            run.splits.train.labels, seed=run.seed)
        loss = variant_loss(variant, training.label_smoothing, rows[classes], covered[classes],
                            weight)
        return fit_classifier(
            run, folder, lambda: build_bct_model(variant, stage.model, channels, len(classes),
                                                 cfg.normsm_scale),
            select_classes(run.splits.train, classes), classes, loss, training,
            desc=f"bct generation {k + 1}")

    return Artifact(f"gen:bct:{k}", f"multistep-bct{k}",
                    (classes, stage, weight, variant, training), fit, (previous,))
