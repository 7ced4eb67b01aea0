"""Typed records of what the suite measured: one dataclass per JSON file a notebook writes
(results/<preset>/metrics/seed<k>/<step>.json) and per explored setting (exploration/<label>.json),
with `artifacts` (name -> commit that trained it), `weights` (name -> digest of its trained
weights), `data` (the run's data key and its data set's digests), `commit` (the code that measured
it) and `compute` (CPU, kernels, BLAS, GPU), each left out of the JSON while empty."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fctlib.experiment.jsondata import JsonData
from fctlib.experiment.record_rows import (
    BackfillCurve,
    BCTPoint,
    Cases,
    Criterion,
    DataShareRow,
    History,
    InfluenceRow,
    MatrixScores,
    MethodRow,
    SideInfoSizeRow,
    SideInfoSourceRow,
    SweepPoint,
    WidthRow,
)
from fctlib.io import save_json

STEP_RECORDS: dict[str, type[Record]] = {}  # step -> its record class, in the suite's order


@dataclass(kw_only=True)
class Record(JsonData):
    """What one step measured, with the commits of the code that measured it and trained its
    artifacts, the arithmetic of each (where they differ), and its artifacts' weights
    (`store.weights_digest`: two steps of a seed that trained a model apart, as separate machines
    do, name different weights). A subclass with a NOTEBOOK is a step's record and registers in
    STEP_RECORDS."""

    STEP: ClassVar[str]
    NOTEBOOK: ClassVar[str] = ""  # the notebook that writes it
    OWN_MODELS: ClassVar[bool] = False  # its models are a run of its own, not the seed's shared
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("artifacts", "weights", "data", "commit",
                                                     "compute", "trained_with")
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact name -> git commit
    weights: dict[str, str] = field(default_factory=dict)  # artifact name -> weights digest
    data: dict[str, str] = field(default_factory=dict)  # key, train, test: Run.data_key, digests
    commit: str = ""  # the git commit of the code that measured it ("" : unrecorded)
    compute: dict[str, str] = field(default_factory=dict)  # provenance.compute() of the run
    # artifact name -> the arithmetic that trained it where it is not `compute` (a model this run
    # loaded from a runs folder another process trained, with other threads or on another CPU)
    trained_with: dict[str, dict[str, str]] = field(default_factory=dict)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.NOTEBOOK:
            STEP_RECORDS[cls.STEP] = cls

    @classmethod
    def path(cls, results_dir: str | Path, seed: int) -> Path:
        """results_dir/metrics/seed<k>/<STEP>.json."""
        return Path(results_dir, "metrics", f"seed{seed}", f"{cls.STEP}.json")

    def save(self, results_dir: str | Path, seed: int) -> Path:
        """Write the record's JSON to its path, atomically."""
        return save_json(self.to_json(), self.path(results_dir, seed))


@dataclass(kw_only=True)
class CaseRecord(Record):
    """A step's record of test cases: `cases` under the preset's distance, `by_distance` the same
    cases under every distance (empty in records written before it)."""

    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "by_distance")
    cases: Cases
    by_distance: dict[str, Cases] = field(default_factory=dict)


@dataclass(kw_only=True)
class DataRecord(Record):
    """Notebook 00: the data set's source, class names, old classes and split sizes."""

    STEP: ClassVar[str] = "data"
    NOTEBOOK: ClassVar[str] = "00_data"
    source: str
    old_classes: list[int]
    class_names: list[str]
    splits: list[dict]  # one summary row per split


@dataclass(kw_only=True)
class OldRecord(CaseRecord):
    """Notebook 01: the old model's retrieval (old/old) and training history."""

    STEP: ClassVar[str] = "old"
    NOTEBOOK: ClassVar[str] = "01_train_old"
    history: History


@dataclass(kw_only=True)
class SideInfoRecord(Record):
    """Notebook 02: the side-info model's size, own retrieval (a diagnostic) and history."""

    STEP: ClassVar[str] = "side_info"
    NOTEBOOK: ClassVar[str] = "02_side_info"
    side_info_dim: int
    diagnostic: Cases
    history: History


@dataclass(kw_only=True)
class NewRecord(CaseRecord):
    """Notebook 03: the new model's retrieval (new/new), new/old where sizes match, history."""

    STEP: ClassVar[str] = "new"
    NOTEBOOK: ClassVar[str] = "03_train_new"
    diagnostic: Cases
    history: History


@dataclass(kw_only=True)
class BCTRecord(CaseRecord):
    """Notebook 04: BCT's cases at the variant and weight chosen on tune (under `distance`), every
    variant's points on tune and test under both distances, the influence diagnostic, and the
    chosen model's history. `sweep` is the weight-only form of records written before variants
    (empty, and left out of the JSON, in new ones); either form saves back unchanged."""

    STEP: ClassVar[str] = "bct"
    NOTEBOOK: ClassVar[str] = "04_bct"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (
        *CaseRecord.OMITTED_WHEN_EMPTY, "variant", "distance", "points", "influence", "sweep")
    weight: float
    history: History
    variant: str = ""
    distance: str = ""
    points: list[BCTPoint] = field(default_factory=list)
    influence: list[InfluenceRow] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)


@dataclass(kw_only=True)
class TransformationRecord(CaseRecord):
    """Notebook 05: FCT's cases without and with side-info, and h's histories."""

    STEP: ClassVar[str] = "transformation"
    NOTEBOOK: ClassVar[str] = "05_transformation"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*CaseRecord.OMITTED_WHEN_EMPTY,
                                                     "fit_error")
    side_info_dim: int
    history: dict[str, History]  # "no-side", "side"
    # h's mean squared error by h ("no-side", "side") and split ("train", "tune"): overfitting shows
    fit_error: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(kw_only=True)
class SideInfoSizeRecord(Record):
    """Notebook 06: FCT by side-info size."""

    STEP: ClassVar[str] = "side_info_size"
    NOTEBOOK: ClassVar[str] = "06_side_info_size"
    rows: list[SideInfoSizeRow]


@dataclass(kw_only=True)
class FastFillRecord(Record):
    """Notebook 07: the backfilling curves, how sigma ranks the real error, histories, and each
    transformed gallery's diagnostics (`methods.fastfill.gallery_diagnostics`)."""

    STEP: ClassVar[str] = "fastfill"
    NOTEBOOK: ClassVar[str] = "07_fastfill"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "diagnostics",
                                                     "fit_error")
    side_info_dim: int
    curves: list[BackfillCurve]
    sigma_error_spearman: dict[str, float]
    history: dict[str, History]
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)
    # FastFill's h's mean squared error by h ("no-side", "side") and split ("train", "tune")
    fit_error: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(kw_only=True)
class AblationsRecord(Record):
    """Notebook 08: the ablations of h (side-info source, data share, width)."""

    STEP: ClassVar[str] = "ablations"
    NOTEBOOK: ClassVar[str] = "08_ablations"
    side_info_dim: int
    side_info_source: list[SideInfoSourceRow]
    data_share: list[DataShareRow]
    width: list[WidthRow]


@dataclass(kw_only=True)
class MethodsRecord(Record):
    """Notebook 09: the methods table's rows, BCT's variant and weight, backward projection, each
    method's criterion, the methods left out of the price table (their new model differs on
    purpose), every method registered when it ran (the report names those without rows), and
    where OCA's class-level pull lands (`methods.oca.prototype_diagnostics`; empty in records
    written before it)."""

    STEP: ClassVar[str] = "methods"
    NOTEBOOK: ClassVar[str] = "09_methods"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "methods",
                                                     "bct_variant", "oca_diagnostics")
    rows: list[MethodRow]
    bct_weight: float
    projection: dict  # {"cases": Cases, "history": History}
    criteria: list[Criterion]
    unpriced: list[str]
    methods: list[str] = field(default_factory=list)  # registered methods, table order
    oca_diagnostics: dict[str, float] = field(default_factory=dict)  # fractions of images
    bct_variant: str = ""  # "": a record written before it


@dataclass(kw_only=True)
class MultistepRecord(Record):
    """Notebook 10: each generation's classes, per distance each method's matrices, and FCT's
    transformations' fit errors; `methods` keeps the order they were measured in (JSON sorts the
    keys of `distances`)."""

    STEP: ClassVar[str] = "multistep"
    NOTEBOOK: ClassVar[str] = "10_multistep"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "fit_error")
    generations: list[list[int]]
    methods: list[str]
    distances: dict[str, dict[str, MatrixScores]]
    # each h(a -> b)'s mean squared error by split ("train", "tune"), keyed "a->b" (from 0)
    fit_error: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_matrices(cls, generations: list[list[int]], matrices: dict[str, dict[str, dict]],
                      fit_error: dict[str, dict[str, float]] | None = None) -> MultistepRecord:
        """The record of MultiStep.matrices' output per distance, methods in its order, and
        `fct.generation_fit_errors`' output."""
        methods = list(next(iter(matrices.values())))
        return cls.from_json({"generations": generations, "methods": methods,
                              "distances": matrices, "fit_error": fit_error or {}})


@dataclass(kw_only=True)
class CrossDatasetRecord(CaseRecord):
    """Notebook 11: the update across data sets, its cases on the common test set (class split:
    `old` the preset's data set A, `new` the second data set B), the BCT model it trained, where
    its data came from and its split sizes."""

    STEP: ClassVar[str] = "cross_dataset"
    NOTEBOOK: ClassVar[str] = "11_cross_dataset"
    OWN_MODELS: ClassVar[bool] = True  # old, new, ... of its own run (other data), same names
    source: str  # A's source + B's
    other_data: str  # B's name
    bct: str  # the BCT model's name (the main run's choice on tune)
    splits: list[dict]  # one summary row per split


@dataclass(kw_only=True)
class ExplorationRecord(Record):
    """`fct explore`: every case's tune-split metrics under one setting of the preset."""

    STEP: ClassVar[str] = "exploration"
    label: str
    overrides: dict
    seed: int
    split: str
    cases: Cases
    wall_seconds: float

    def path(self, results_dir: str | Path, seed: int) -> Path:
        """results_dir/exploration/<label>.json (the record holds its seed)."""
        return Path(results_dir, "exploration", f"{self.label}.json")


def load_record(path: str | Path) -> Record:
    """The step record in `path` (a step's JSON, named after its step)."""
    path = Path(path)
    if path.stem not in STEP_RECORDS:
        raise ValueError(f"{path}: no step {path.stem!r}; steps are {sorted(STEP_RECORDS)}")
    return STEP_RECORDS[path.stem].from_json(json.loads(path.read_text()))


def load_records(results_dir: str | Path) -> dict[int, dict[str, Record]]:
    """{seed: {step: record}} from results_dir/metrics/seed<k>/<step>.json, seeds ascending."""
    paths = sorted(Path(results_dir, "metrics").glob("seed*/*.json"))
    if not paths:
        raise FileNotFoundError(f"no step metrics under {Path(results_dir, 'metrics')}; "
                                "run the suite first (make reproduce)")
    out: dict[int, dict[str, Record]] = {}
    for path in sorted(paths, key=_seed):
        out.setdefault(_seed(path), {})[path.stem] = load_record(path)
    return out


def _seed(path: Path) -> int:
    return int(path.parent.name.removeprefix("seed"))


def load_exploration(results_dir: str | Path) -> list[ExplorationRecord]:
    """Every explored setting under results_dir/exploration/, by file name."""
    return [ExplorationRecord.from_json(json.loads(path.read_text()))
            for path in sorted(Path(results_dir, "exploration").glob("*.json"))]
