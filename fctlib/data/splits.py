"""Deterministic class-aware subsets: tune split, per-class subsampling, old/new class splits
(`run_splits.py` assembles a run's splits from them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from fctlib.data.images import ImageSet
from fctlib.errors import DataError

if TYPE_CHECKING:
    from fctlib.data.sources import DataBundle

SPLIT_SEED = 0  # data splits are fixed across seeds: seeds vary initialisation and training only


def _class_rng(seed: int, label: int) -> np.random.Generator:
    """A generator for one class: a class's draw does not depend on which other classes exist."""
    return np.random.default_rng([int(seed), int(label)])


def _as_class_list(classes: Iterable[int], what: str) -> list[int]:
    values = [int(c) for c in classes]
    if not values:
        raise ValueError(f"{what} is empty; give at least one class id")
    return values


def carve_tune(train: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split `train` into (train_rest, tune), taking round(fraction * n) of each class's n rows
    (at least 1, at most n - 1, when n >= 2) by a seeded draw; both keep the original row order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"tune fraction must be strictly between 0 and 1, got {fraction}")
    tune_rows = []
    for label in np.unique(train.labels):
        rows = np.flatnonzero(train.labels == label)
        if len(rows) < 2:
            continue
        count = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        tune_rows.append(rows[_class_rng(seed, label).permutation(len(rows))[:count]])
    tune = np.sort(np.concatenate(tune_rows)) if tune_rows else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(train)), tune)
    return train.subset(rest), train.subset(tune)


def subsample_per_class(images: ImageSet, per_class: int | None, seed: int) -> ImageSet:
    """At most `per_class` rows of each class, drawn with `seed`, original order kept; None: all."""
    if per_class is None:
        return images
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1 (or None for all rows), got {per_class}")
    keep = []
    for label in np.unique(images.labels):
        rows = np.flatnonzero(images.labels == label)
        if len(rows) > per_class:
            rows = _class_rng(seed, label).choice(rows, size=per_class, replace=False)
        keep.append(rows)
    rows = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return images.subset(rows)


def nested_share(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Sorted row indices of round(share * n) rows (at least 1) of each class's n rows, taken from
    the front of a seeded per-class order: stratified by class, and nested (with one seed, a smaller
    share's rows are part of every larger share's); share 1 gives every row."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    labels = np.asarray(labels)
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = max(int(round(share * len(rows))), 1)
        keep.append(rows[_class_rng(seed, label).permutation(len(rows))[:count]])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def select_classes(images: ImageSet, classes: Iterable[int]) -> ImageSet:
    """The rows whose label is in `classes`, in their original order, labels unchanged (the set
    itself when that is every row: no copy)."""
    wanted = np.isin(images.labels, _as_class_list(classes, "classes"))
    return images if wanted.all() else images.subset(np.flatnonzero(wanted))


def default_old_classes(num_classes: int) -> list[int]:
    """The old model's default classes: the first half by label index, 0 .. num_classes//2 - 1."""
    if num_classes < 2:
        raise ValueError(f"an old/new class split needs at least 2 classes, got {num_classes}")
    return list(range(num_classes // 2))


def validate_class_split(old_classes: Iterable[int], num_classes: int) -> list[int]:
    """Check that old classes are distinct ids in [0, num_classes) and a proper, non-empty subset;
    return them sorted."""
    old = _as_class_list(old_classes, "old_classes")
    duplicates = sorted({c for c in old if old.count(c) > 1})
    if duplicates:
        raise ValueError(f"old_classes lists classes more than once: {duplicates}")
    outside = sorted(c for c in old if not 0 <= c < num_classes)
    if outside:
        raise ValueError(f"old_classes {outside} are not class ids in [0, {num_classes})")
    if len(old) == num_classes:
        raise ValueError(
            f"old_classes holds all {num_classes} classes; leave some new classes for the new model"
        )
    return sorted(old)


def check_class_split(bundle: DataBundle, old_classes: list[int] | None) -> list[int]:
    """A preset's old classes (None: the first half) checked against a loaded data set, and every
    class checked to have training images; DataError naming the key and the fix otherwise."""
    try:
        old = validate_class_split(
            old_classes if old_classes is not None else default_old_classes(bundle.num_classes),
            bundle.num_classes)
    except ValueError as err:
        raise DataError(f"data.old_classes: {err} ({bundle.source}); list class ids of this data "
                        "set, or set it to null for the first half of its classes") from None
    present = set(np.unique(bundle.train.labels).tolist())
    missing = [c for c in range(bundle.num_classes) if c not in present]
    if missing:
        raise DataError(f"{bundle.source}: the train split has no images of classes "
                        f"{missing[:10]}; every class needs training images: add them, or "
                        "leave those classes out of the data set")
    return old


def label_map(classes: Iterable[int]) -> dict[int, int]:
    """{original class id: position in `classes`}: the labels of a classifier over those classes."""
    values = _as_class_list(classes, "classes")
    if len(set(values)) != len(values) or min(values) < 0:
        raise ValueError(f"classes must be distinct class ids >= 0, got {values}")
    return {c: i for i, c in enumerate(values)}


def remap_labels(images: ImageSet, classes: Iterable[int]) -> ImageSet:
    """The same images with labels renumbered 0..len(classes)-1 by `label_map(classes)`."""
    mapping = label_map(classes)
    unknown = sorted(set(np.unique(images.labels).tolist()) - set(mapping))
    if unknown:
        raise ValueError(
            f"images carry labels {unknown[:10]} outside `classes`; "
            "apply select_classes(images, classes) first"
        )
    lookup = np.zeros(max(mapping) + 1, dtype=np.int64)
    lookup[list(mapping)] = list(mapping.values())
    return images.with_labels(lookup[images.labels])
