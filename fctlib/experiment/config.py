"""Presets: YAML files layered on shared defaults, validated into typed dataclasses up front."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fctlib.data.spec import ROOTLESS_DATASETS, DataConfig
from fctlib.evaluation.distances import DISTANCES
from fctlib.experiment.typed_yaml import (
    PresetError,
    build_typed,
    merge_layer,
    parse_overrides_text,
    read_yaml,
)
from fctlib.models.spec import ModelSpec
from fctlib.paths import project_root
from fctlib.training.config import TrainConfig

PROJECT_ROOT = project_root()
PARAMS_DIR = PROJECT_ROOT / "params"
DEFAULTS_FILE = PARAMS_DIR / "defaults.yaml"
# what psi is: SimCLR on the old classes' images (the default), SimCLR on another data set's
# images, a supervised network on the old classes, an untrained network
SIDE_INFO_SOURCES = ("simclr", "other-data", "supervised", "random")
ABLATION_SOURCES = (*SIDE_INFO_SOURCES, "none")  # "none": FCT without side-info (size 0)
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # one folder or file name under results/
# `methods.<name>` of a preset -> the dataclass of that section, registered by the method module
# that reads it (`method_section`); its defaults are the dataclass's
METHOD_SECTIONS: dict[str, type] = {}
OPEN_SECTIONS = ("methods",)  # keys defaults.yaml need not list: checked by Preset.check_methods
# keys that moved or went: a preset still using them is told where to, or why
MOVED_KEYS = {**{k: f"is now 'methods.{k}'; move it there (under methods:)"
                 for k in ("bct", "fastfill", "projection", "oca", "dsimplex", "cross")},
              **{f"multistep.bct_{k}": "is gone: the multi-step chain trains the BCT variant and "
                                      "weight chosen on tune; remove it" for k in ("variant",
                                                                                  "weight")}}


def method_section(name: str):
    """Register a dataclass as the settings a method reads from `methods.<name>` of a preset, so
    a method's preset defaults live in its own module."""
    def register(cls: type) -> type:
        if name in METHOD_SECTIONS:
            raise ValueError(f"preset section methods.{name} is registered twice")
        METHOD_SECTIONS[name] = cls
        return cls

    return register


@dataclass(frozen=True)
class StageConfig:
    """A trained network: its architecture and its optimisation."""

    model: ModelSpec
    training: TrainConfig


@dataclass(frozen=True)
class SideInfoConfig:
    """Self-supervised side-information: its size, the ablation sizes, the SimCLR training."""

    model: ModelSpec
    training: TrainConfig
    temperature: float = 0.5
    ablation_dims: list[int] = field(default_factory=lambda: [8, 32, 128])

    def __post_init__(self):
        if self.temperature <= 0 or any(d < 1 for d in self.ablation_dims):
            raise ValueError("temperature must be > 0 and every ablation_dims entry >= 1")


@dataclass(frozen=True)
class TransformationConfig:
    """The FCT transformation MLP and its training."""

    training: TrainConfig
    branch_widths: list[int] = field(default_factory=lambda: [256, 256])
    mixer_widths: list[int] = field(default_factory=lambda: [2048, 2048])
    # the features h is fitted on: 1, the cached unaugmented embeddings; k > 1, k augmented passes
    # cached, one per epoch; 0, fresh augmentations every batch (ml-fct)
    feature_views: int = 1

    def __post_init__(self):
        if not self.branch_widths or min(self.branch_widths + self.mixer_widths) < 1:
            raise ValueError(
                "branch_widths and mixer_widths must be positive, branch_widths non-empty"
            )
        if self.feature_views < 0:
            raise ValueError(f"feature_views must be >= 0 (0: fresh augmentations every batch), "
                             f"got {self.feature_views}")


@dataclass(frozen=True)
class AblationConfig:
    """FCT ablations: side-info sources, shares of the training set fitting h, h's width factors."""

    side_info_sources: list[str] = field(default_factory=lambda: list(ABLATION_SOURCES))
    data_shares: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    width_factors: list[float] = field(default_factory=lambda: [0.25, 1.0, 4.0])

    def __post_init__(self):
        unknown = [s for s in self.side_info_sources if s not in ABLATION_SOURCES]
        if not self.side_info_sources or unknown:
            raise ValueError(f"side_info_sources must be a non-empty list of {ABLATION_SOURCES}, "
                             f"got {self.side_info_sources}")
        if not self.data_shares or not all(0 < s <= 1 for s in self.data_shares):
            raise ValueError(
                f"data_shares must be a non-empty list in (0, 1], got {self.data_shares}")
        if not self.width_factors or min(self.width_factors) <= 0:
            raise ValueError(f"width_factors must be a non-empty list of values > 0, got "
                             f"{self.width_factors}")
        for key in ("side_info_sources", "data_shares", "width_factors"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists a value more than once: {values}")


@dataclass(frozen=True)
class MultiStepConfig:
    """Multi-step updates: how many classes (the first ones by label index) each generation sees
    (each method's settings along the chain: its `methods.<name>` section)."""

    class_counts: list[int] | None = None  # None: half, three quarters and all of the classes

    def __post_init__(self):
        counts = self.class_counts
        rising = counts is None or all(b > a for a, b in zip(counts, counts[1:], strict=False))
        if counts is not None and (len(counts) < 2 or min(counts) < 2 or not rising):
            raise ValueError(f"class_counts must rise strictly over >= 2 generations, each >= 2, "
                             f"got {counts}")


@dataclass(frozen=True)
class Preset:
    """Everything a run of the suite depends on."""

    name: str
    description: str
    data: DataConfig
    old: StageConfig
    new: StageConfig
    side_info: SideInfoConfig
    transformation: TransformationConfig
    ablation: AblationConfig
    multistep: MultiStepConfig
    distance: str = "l2"
    # a second data set: other-data side-info learns from its images (notebook 08), the
    # cross-dataset update adds its classes (notebook 11)
    other_data: str = "mnist"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: dict = field(default_factory=dict)  # methods.<name>: see METHOD_SECTIONS
    source: str = ""  # the files (and overrides) it was read from, for messages

    def __post_init__(self):
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        check_plain_name(self.name, "name", "results/<name>/")
        if self.other_data not in ROOTLESS_DATASETS:
            raise ValueError(f"other_data must be one of {ROOTLESS_DATASETS}, got "
                             f"{self.other_data!r}")
        if not self.seeds:
            raise ValueError("seeds is empty; list at least one seed, e.g. seeds: [0]")

    def method(self, name: str):
        """The settings of `methods.<name>` as the dataclass its method registered (its defaults
        for keys the preset leaves out); a wrong key or value is a PresetError naming it."""
        if name not in METHOD_SECTIONS:
            raise KeyError(f"no method registers methods.{name} (registered: "
                           f"{sorted(METHOD_SECTIONS)}); import fctlib.methods first")
        return build_typed(METHOD_SECTIONS[name], self.methods.get(name) or {}, self.source,
                           f"methods.{name}.")

    def check_methods(self) -> None:
        """Refuse a `methods.<name>` no method registers and any invalid section, before any
        work (call once the methods are imported)."""
        unknown = sorted(set(self.methods) - set(METHOD_SECTIONS))
        if unknown:
            raise PresetError(f"{self.source}: unknown key 'methods.{unknown[0]}' (known: "
                              f"{sorted(METHOD_SECTIONS)})")
        for name in self.methods:
            self.method(name)


def check_plain_name(value: str, what: str, names: str) -> None:
    """Refuse a name (of a preset, an exploration) that is not one plain file or folder name:
    `what` is where it was given, `names` what it names."""
    if not PLAIN_NAME.fullmatch(value):
        raise PresetError(f"{what} {value!r} must be a plain name (letters, digits, '.', '_', "
                          f"'-'; no '/' or leading '.'): it names {names}")


def preset_names() -> list[str]:
    """The names of the presets in params/ (defaults.yaml is layered under them, not one)."""
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml") if p.stem != "defaults")


def resolve_preset_path(preset: str | Path) -> Path:
    """A preset path, or a name in params/ (`fashion-mnist` -> params/fashion-mnist.yaml)."""
    path = Path(preset)
    candidates = [path, PROJECT_ROOT / path, PARAMS_DIR / f"{preset}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    known = ", ".join(preset_names())
    raise FileNotFoundError(f"preset {preset!r} not found (looked at {tried}); pass one of "
                            f"{known} or the path of a preset YAML")


def refuse_moved_keys(layer: dict, source: str) -> None:
    """A PresetError naming the first key of `layer` that moved or went (MOVED_KEYS), and what to
    do."""
    for old, what in MOVED_KEYS.items():
        section, _, key = old.partition(".")
        value = layer.get(section)
        if section in layer and (not key or isinstance(value, dict) and key in value):
            raise PresetError(f"{source}: '{old}' {what}")


def load_preset(preset: str | Path, overrides: dict | str | None = None) -> Preset:
    """Read defaults.yaml, layer the preset file and `overrides` (a dict, or its YAML/JSON text as
    papermill's `-p overrides '{...}'` passes it) on it, and validate the result."""
    path = resolve_preset_path(preset)
    merged = read_yaml(DEFAULTS_FILE)
    layer = read_yaml(path)
    if not layer:
        raise PresetError(f"{path} is empty (no keys, or only comments); write the settings that "
                          "differ from params/defaults.yaml in it, at least `name: <results "
                          "folder>`, or pass another preset")
    refuse_moved_keys(layer, str(path))
    merged = merge_layer(merged, layer, str(path), open_keys=OPEN_SECTIONS)
    source = str(path)
    overrides = parse_overrides_text(overrides) if isinstance(overrides, str) else overrides
    if overrides:
        refuse_moved_keys(overrides, f"overrides of {path}")
        merged = merge_layer(merged, overrides, f"overrides of {path}", open_keys=OPEN_SECTIONS)
        source = f"{path} with overrides {overrides}"
    if "source" in merged:
        raise PresetError(f"{source}: unknown key 'source' (set by the suite, not a setting)")
    return build_typed(Preset, {**merged, "source": source}, source)
