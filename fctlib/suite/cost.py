"""What one seed costs a preset: for notebooks 00-06 (with the BCT sweep) the image passes of
every training, embedding and h fit and the seconds they take at given rates (from the preset
alone, so it can be sized before any machine runs it); for every notebook, what it took when
measured."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fctlib.experiment.config import Preset
from fctlib.methods.bct import BCTName, matched_encoder
from fctlib.methods.fct import TransformationName
from fctlib.methods.side_info import SideInfoName
from fctlib.paths import DEFAULT_PRESET, benchmarks_file, results_root


@dataclass(frozen=True)
class SplitSizes:
    """Images per split of a run: training images of the old classes and of all, tune, test."""

    old_train: int
    train: int
    tune: int
    test: int


SUPERVISED, SMALL_BATCH, SIMCLR = "supervised", "small batch", "SimCLR"  # kinds of training step


@dataclass(frozen=True)
class ComparisonWork:
    """The work of one seed of notebooks 00-06: per artifact, what it processes (in images), and
    the kind of step each network trains with (supervised where not named): a GPU trains a
    batch smaller than the new model's (bt2's recipe) and SimCLR's two views at rates of their
    own (on one H200 0.16 and 0.43 of the supervised rate, results/benchmarks/gpu/README.md)."""

    training: dict[str, int]  # image passes through a network being trained (SimCLR: 2 views)
    embedding: dict[str, int]  # images embedded by a trained network (forward only)
    transformation: dict[str, int]  # (old, side, new) items fed to h while fitting it
    kinds: dict[str, str] = field(default_factory=dict)  # training artifact -> SMALL_BATCH, SIMCLR

    def seconds(self, train_per_s: float, embed_per_s: float, h_items_per_s: float, *,
                small_batch_per_s: float | None = None, simclr_per_s: float | None = None,
                compile_s: float = 0.0) -> dict:
        """Seconds of each kind of work and their total, at the given rates (a small batch's and
        SimCLR's: the supervised rate where not given) and `compile_s` per network and h
        trained (a first epoch's compilation)."""
        rate = {SUPERVISED: train_per_s, SMALL_BATCH: small_batch_per_s or train_per_s,
                SIMCLR: simclr_per_s or train_per_s}
        parts = {"training": sum(n / rate[self.kinds.get(a, SUPERVISED)]
                                 for a, n in self.training.items()),
                 "embedding": sum(self.embedding.values()) / embed_per_s,
                 "transformation": sum(self.transformation.values()) / h_items_per_s,
                 "compilation": compile_s * (len(self.training) + len(self.transformation))}
        return {**parts, "total": sum(parts.values())}

    def part(self, artifacts: list[str]) -> ComparisonWork:
        """The work of some of the artifacts (a notebook's)."""
        def keep(work: dict) -> dict:
            return {a: n for a, n in work.items() if a in artifacts}

        return ComparisonWork(keep(self.training), keep(self.embedding),
                              keep(self.transformation), keep(self.kinds))


def side_info_dims(preset: Preset) -> list[int]:
    """Every SimCLR side-info size notebooks 02 and 06 train: the preset's, then the ablation's."""
    main = preset.side_info.model.embedding_dim
    return list(dict.fromkeys([main, *preset.side_info.ablation_dims]))


def bct_models(preset: Preset) -> list[BCTName]:
    """Every BCT model notebook 04 trains: the sweep, then the matched new models its variants'
    prices are measured against (those that are not `new` itself)."""
    sweep = preset.method("bct").models()
    variants = dict.fromkeys(variant for variant, _ in sweep)
    matched = [m for m in (matched_encoder(preset, v) for v in variants) if m != "new"]
    return [*(BCTName(v, w) for v, w in sweep), *matched]


def main_comparison_work(preset: Preset, sizes: SplitSizes) -> ComparisonWork:
    """The training, embedding and h-fitting work of old, SimCLR side-info, new, every BCT
    variant and weight of the sweep (and the matched new models of its variants), h without and
    with side-info and the side-info size ablation (notebooks 00-06), by the artifacts' names
    (their string forms)."""
    new_epochs = preset.new.training.epochs
    side_epochs = preset.side_info.training.epochs
    training = {"old": sizes.old_train * preset.old.training.epochs,
                "new": sizes.train * new_epochs}
    bct = {str(name): preset.method("bct").training(name.variant, preset.new.training).epochs
           for name in bct_models(preset)}
    training.update({name: sizes.train * epochs for name, epochs in bct.items()})
    kinds = {str(name): SMALL_BATCH for name in bct_models(preset)
             if preset.method("bct").training(name.variant, preset.new.training).batch_size
             < preset.new.training.batch_size}
    training.update({str(SideInfoName(d)): 2 * sizes.old_train * side_epochs
                     for d in side_info_dims(preset)})
    kinds.update({str(SideInfoName(d)): SIMCLR for d in side_info_dims(preset)})
    embedding = {"old": sizes.train + sizes.tune + sizes.test, "new": sizes.train + sizes.test}
    embedding.update({name: sizes.tune for name in bct})
    embedding["bct chosen"] = sizes.test
    embedding.update({str(SideInfoName(d)): sizes.train + sizes.test
                      for d in side_info_dims(preset)})
    h = preset.transformation
    fitted = [TransformationName(d) for d in sorted({0, *side_info_dims(preset)})]
    transformation = {str(name): sizes.train * h.training.epochs for name in fitted}
    # augmented features: each fit embeds its encoders' passes (old, new, side-info if any)
    passes = {0: h.training.epochs, 1: 0}.get(h.feature_views, h.feature_views)
    embedding.update({str(name): passes * sizes.train * (2 + bool(name.side_dim))
                      for name in fitted if passes})
    return ComparisonWork(training, embedding, transformation, kinds)


def class_split_sizes(preset: Preset, train_per_class: int, test_per_class: int,
                      num_classes: int) -> SplitSizes:
    """The split sizes of a data set with equal classes, after the preset's subsampling and its
    tune split (rounded as `carve_tune` rounds: at least one tune image per class)."""
    data = preset.data
    per_class = min(train_per_class, data.train_per_class or train_per_class)
    tune = max(1, round(per_class * data.tune_fraction))
    old = len(data.old_classes) if data.old_classes is not None else num_classes // 2
    test = min(test_per_class, data.test_per_class or test_per_class)
    return SplitSizes(old_train=old * (per_class - tune), train=num_classes * (per_class - tune),
                      tune=num_classes * tune, test=num_classes * test)


def measured_step_cost(preset_name: str, step: str, benchmarks: Path | None = None,
                       results: Path | None = None) -> str:
    """One line: the seconds a notebook took on a preset when last measured, and where that
    figure comes from (the default preset: `make bench` from an empty runs folder; another
    preset: the timings of its last committed run)."""
    benchmarks = benchmarks or benchmarks_file()
    if preset_name == DEFAULT_PRESET and benchmarks.is_file():
        bench = json.loads(benchmarks.read_text())
        wall = bench["figures"]["default_preset_wall"]
        if step in wall["notebooks"]:
            machine = bench["machine"]
            return (f"{step} takes {wall['notebooks'][step]:,.0f} s of the "
                    f"{wall['seconds_per_seed']:,.0f} s of one {preset_name} seed from scratch, "
                    f"earlier steps run first ({machine['cpu_count']} CPU cores, {machine['cpu']}; "
                    f"`make bench` at commit {bench['git_commit'][:7]}, {bench['date']})")
    results = results or results_root(preset_name)
    for timings in sorted(results.glob("notebooks/seed*/timings.json")):
        seconds = json.loads(timings.read_text()).get(step)
        if seconds is not None:
            return (f"{step} took {seconds:,.0f} s on {preset_name} in its last committed run "
                    f"({timings.relative_to(results.parent.parent)}; less where models were "
                    "already cached)")
    return f"{step} has not been timed on {preset_name} yet"
