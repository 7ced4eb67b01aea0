"""The rows inside step records (`records.py`): one dataclass per kind of row a step measures,
and the shapes of metrics, cases and histories."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fctlib.experiment.jsondata import JsonData

Metrics = dict[str, dict[str, float]]  # {class split: {metric: value}}, values as fractions
Cases = dict[str, Metrics]  # {case, e.g. "old/old": its metrics}
History = list[dict]  # one dict per training epoch


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

    OMITTED_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("matched", "key")

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
    # the BCT model's store key (its settings, upstream, data and seed); "" in older records
    key: str = ""


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


@dataclass
class SideInfoSizeRow(JsonData):
    """FCT with side-info of one size (0: none)."""

    side_info_dim: int
    metrics: Metrics


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
