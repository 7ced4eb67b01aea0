"""Typed records of what the suite measured: one dataclass per JSON file a notebook writes
(results/<preset>/metrics/seed<k>/<step>.json) and per explored setting (exploration/<label>.json),
with `artifacts` (name -> commit that trained it), `commit` (the code that measured it) and
`compute` (CPU, kernels, BLAS, GPU), each left out of the JSON while empty."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fctlib.experiment.jsondata import JsonData
from fctlib.io import save_json

Metrics = dict[str, dict[str, float]]  # {class split: {metric: value}}, values as fractions
Cases = dict[str, Metrics]  # {case, e.g. "old/old": its metrics}
History = list[dict]  # one dict per training epoch

STEP_RECORDS: dict[str, type[Record]] = {}  # step -> its record class, in the suite's order


@dataclass(kw_only=True)
class Record(JsonData):
    """What one step measured, with the commits of the code that measured it and trained its
    artifacts. A subclass with a NOTEBOOK is a step's record and registers in STEP_RECORDS."""

    STEP: ClassVar[str]
    NOTEBOOK: ClassVar[str] = ""  # the notebook that writes it
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("artifacts", "commit", "compute")
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact name -> git commit
    commit: str = ""  # the git commit of the code that measured it ("" : unrecorded)
    compute: dict[str, str] = field(default_factory=dict)  # provenance.compute() of the run

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.NOTEBOOK:
            STEP_RECORDS[cls.STEP] = cls

    def path(self, results_dir: str | Path, seed: int) -> Path:
        """results_dir/metrics/seed<k>/<STEP>.json."""
        return Path(results_dir, "metrics", f"seed{seed}", f"{self.STEP}.json")

    def save(self, results_dir: str | Path, seed: int) -> Path:
        """Write the record's JSON to its path, atomically."""
        return save_json(self.to_json(), self.path(results_dir, seed))


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
class OldRecord(Record):
    """Notebook 01: the old model's retrieval (old/old) and training history."""

    STEP: ClassVar[str] = "old"
    NOTEBOOK: ClassVar[str] = "01_train_old"
    cases: Cases
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
class NewRecord(Record):
    """Notebook 03: the new model's retrieval (new/new), new/old where sizes match, history."""

    STEP: ClassVar[str] = "new"
    NOTEBOOK: ClassVar[str] = "03_train_new"
    cases: Cases
    diagnostic: Cases
    history: History


@dataclass
class SweepPoint(JsonData):
    """One BCT influence-loss weight on the tune split: both cases and the choice's score (the
    records written before BCT's variants)."""

    weight: float
    bct_old: dict[str, float] = field(metadata={"json": "bct/old"})  # metrics of all queries
    bct_bct: dict[str, float] = field(metadata={"json": "bct/bct"})
    score: float


@dataclass
class BCTPoint(JsonData):
    """One BCT model (variant, weight) on one split under one distance: bct/old, bct/bct, and the
    independent old/old, new/new and matched/matched of the same split and distance (metrics of
    all queries), and the mean norm of its embeddings over the old model's."""

    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("matched",)

    variant: str
    weight: float
    split: str
    distance: str
    bct_old: dict[str, float] = field(metadata={"json": "bct/old"})
    bct_bct: dict[str, float] = field(metadata={"json": "bct/bct"})
    old_old: dict[str, float] = field(metadata={"json": "old/old"})
    new_new: dict[str, float] = field(metadata={"json": "new/new"})
    norm_ratio: float
    # the independent new model trained as the variant trains its own (network, loss, optimiser)
    matched: dict[str, float] = field(default_factory=dict, metadata={"json": "matched/matched"})


@dataclass
class InfluenceRow(JsonData):
    """One BCT construction applied to the old model's own training embeddings (no training):
    its influence CE, the lowest CE reachable, how many old-class samples it classifies, how many
    a new-class row wins (None: no new-class rows), how many the old classifier itself classifies
    (None in records before it), and whether it is flagged."""

    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("old_classifier_accuracy",)

    variant: str
    rows: str
    classes: str
    normalize: bool
    label_smoothing: float
    ce: float
    ce_old: float
    floor: float
    accuracy_old: float
    new_row_wins: float | None
    flagged: bool
    old_classifier_accuracy: float | None = None


@dataclass(kw_only=True)
class BCTRecord(Record):
    """Notebook 04: BCT's cases at the variant and weight chosen on tune (under `distance`), every
    variant's points on tune and test under both distances, the influence diagnostic, and the
    chosen model's history. `sweep` is the weight-only form of records written before variants
    (empty, and left out of the JSON, in new ones); either form saves back unchanged."""

    STEP: ClassVar[str] = "bct"
    NOTEBOOK: ClassVar[str] = "04_bct"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (
        *Record.OMITTED_WHEN_EMPTY, "variant", "distance", "points", "influence", "sweep")
    cases: Cases
    weight: float
    history: History
    variant: str = ""
    distance: str = ""
    points: list[BCTPoint] = field(default_factory=list)
    influence: list[InfluenceRow] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)


@dataclass(kw_only=True)
class TransformationRecord(Record):
    """Notebook 05: FCT's cases without and with side-info, and h's histories."""

    STEP: ClassVar[str] = "transformation"
    NOTEBOOK: ClassVar[str] = "05_transformation"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "fit_error")
    cases: Cases
    side_info_dim: int
    history: dict[str, History]  # "no-side", "side"
    # h's mean squared error by h ("no-side", "side") and split ("train", "tune"): overfitting shows
    fit_error: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class SideInfoSizeRow(JsonData):
    """FCT with side-info of one size (0: none)."""

    side_info_dim: int
    metrics: Metrics


@dataclass(kw_only=True)
class SideInfoSizeRecord(Record):
    """Notebook 06: FCT by side-info size."""

    STEP: ClassVar[str] = "side_info_size"
    NOTEBOOK: ClassVar[str] = "06_side_info_size"
    rows: list[SideInfoSizeRow]


@dataclass
class BackfillPoint(JsonData):
    """Retrieval with a share of the gallery backfilled (re-embedded by the new model)."""

    fraction: float
    backfilled: int
    metrics: Metrics


@dataclass
class BackfillCurve(JsonData):
    """A backfilling curve: one transformation's gallery backfilled in one order."""

    side_info_dim: int
    transformation: str
    order: str
    points: list[BackfillPoint]


@dataclass(kw_only=True)
class FastFillRecord(Record):
    """Notebook 07: the backfilling curves, how sigma ranks the real error, histories, and each
    transformed gallery's diagnostics (`methods.fastfill.gallery_diagnostics`)."""

    STEP: ClassVar[str] = "fastfill"
    NOTEBOOK: ClassVar[str] = "07_fastfill"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "diagnostics")
    side_info_dim: int
    curves: list[BackfillCurve]
    sigma_error_spearman: dict[str, float]
    history: dict[str, History]
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class SideInfoSourceRow(JsonData):
    """FCT with side-info from one source (`none`: without side-info)."""

    source: str
    side_info_dim: int
    metrics: Metrics


@dataclass
class DataShareRow(JsonData):
    """FCT with h fitted on a share of the training set."""

    data_share: float
    train_images: int
    metrics: Metrics


@dataclass
class WidthRow(JsonData):
    """FCT with every hidden layer of h scaled by a factor."""

    width_factor: float
    parameters: int
    metrics: Metrics


@dataclass(kw_only=True)
class AblationsRecord(Record):
    """Notebook 08: the ablations of h (side-info source, data share, width)."""

    STEP: ClassVar[str] = "ablations"
    NOTEBOOK: ClassVar[str] = "08_ablations"
    side_info_dim: int
    side_info_source: list[SideInfoSourceRow]
    data_share: list[DataShareRow]
    width: list[WidthRow]


@dataclass
class MethodRow(JsonData):
    """One method's case under one distance (all test queries), and its new model's own top-1."""

    method: str
    case: str
    distance: str
    top1: float
    top5: float
    mAP: float
    new_top1: float
    in_protocol: bool = True  # False: a distance the method's authors do not evaluate it with

    def to_json(self) -> dict:
        """The row as plain JSON values (`in_protocol` written only when False, so rows written
        before the flag existed read and save back unchanged)."""
        data = super().to_json()
        if data["in_protocol"]:
            del data["in_protocol"]
        return data


@dataclass(frozen=True)
class Criterion(JsonData):
    """A method is compatible when its cross-model `case` beats the `reference` retrieval."""

    method: str
    case: str
    reference: str


@dataclass(kw_only=True)
class MethodsRecord(Record):
    """Notebook 09: the methods table's rows, BCT's variant and weight, backward projection, each
    method's criterion, the methods left out of the price table (their new model differs on
    purpose), every method registered when it ran (the report names those without rows)."""

    STEP: ClassVar[str] = "methods"
    NOTEBOOK: ClassVar[str] = "09_methods"
    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (*Record.OMITTED_WHEN_EMPTY, "methods",
                                                     "bct_variant")
    rows: list[MethodRow]
    bct_weight: float
    projection: dict  # {"cases": Cases, "history": History}
    criteria: list[Criterion]
    unpriced: list[str]
    methods: list[str] = field(default_factory=list)  # registered methods, table order
    bct_variant: str = ""  # "": a record written before it


@dataclass
class MatrixScores(JsonData):
    """A method's compatibility matrices (query generation x gallery generation, None above the
    diagonal) with their AC and AM, on top-1 and on mAP."""

    top1: list[list[float | None]]
    mAP: list[list[float | None]]
    AC_top1: float
    AM_top1: float
    AC_mAP: float
    AM_mAP: float


@dataclass(kw_only=True)
class MultistepRecord(Record):
    """Notebook 10: each generation's classes, and per distance each method's matrices; `methods`
    keeps the order they were measured in (JSON sorts the keys of `distances`)."""

    STEP: ClassVar[str] = "multistep"
    NOTEBOOK: ClassVar[str] = "10_multistep"
    generations: list[list[int]]
    methods: list[str]
    distances: dict[str, dict[str, MatrixScores]]

    @classmethod
    def from_matrices(cls, generations: list[list[int]],
                      matrices: dict[str, dict[str, dict]]) -> MultistepRecord:
        """The record of MultiStep.matrices' output per distance, methods in its order."""
        methods = list(next(iter(matrices.values())))
        return cls.from_json({"generations": generations, "methods": methods,
                              "distances": matrices})


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
