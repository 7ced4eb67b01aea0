"""A run's data: the preset's data set loaded, carved into train / tune / test, and its class
split; the same for every seed (seeds vary initialisation and training only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fctlib.data.batches import held_in_memory
from fctlib.data.images import ImageSet
from fctlib.data.sources import DataBundle, dataset_cache_dir, load_dataset
from fctlib.data.spec import DataConfig
from fctlib.data.splits import SPLIT_SEED, carve_tune, check_class_split, subsample_per_class


@dataclass
class Splits:
    """The data of a run: train / tune / test image sets and the class split."""

    train: ImageSet
    tune: ImageSet
    test: ImageSet
    bundle: DataBundle
    old_classes: list[int]

    @property
    def new_classes(self) -> list[int]:
        """The classes only the new model sees."""
        return [c for c in range(self.bundle.num_classes) if c not in self.old_classes]

    @property
    def all_classes(self) -> list[int]:
        """Every class of the data set, by label index."""
        return list(range(self.bundle.num_classes))

    def split(self, name: str) -> ImageSet:
        """The image set called `name` (train, tune or test)."""
        return {"train": self.train, "tune": self.tune, "test": self.test}[name]

    def summary(self) -> list[dict]:
        """Images per split, in old and in new classes."""
        old = self.old_classes
        return [{"split": name, "images": len(images),
                 "classes": len(set(images.labels.tolist())),
                 "old-class images": int(np.isin(images.labels, old).sum()),
                 "new-class images": int((~np.isin(images.labels, old)).sum())}
                for name, images in (("train", self.train), ("tune", self.tune),
                                     ("test", self.test))]


def load_splits(cfg: DataConfig) -> Splits:
    """Load the data set and carve train / tune / test and the old classes, deterministically
    (the same for every seed: seeds vary initialisation and training only); image files are
    decoded into memory as `cfg.path` says."""
    return split_bundle(cfg, load_dataset(cfg.dataset), cfg.old_classes)


def split_bundle(cfg: DataConfig, bundle: DataBundle, old_classes: list[int] | None) -> Splits:
    """`load_splits` of a loaded data set, with `old_classes` (None: the first half)."""
    old = check_class_split(bundle, old_classes)
    train_pool = subsample_per_class(bundle.train, cfg.train_per_class, SPLIT_SEED)
    train, tune = carve_tune(train_pool, cfg.tune_fraction, SPLIT_SEED)
    test = subsample_per_class(bundle.test, cfg.test_per_class, SPLIT_SEED)
    # files are decoded once here unless cfg.path streams them (see `held_in_memory`)
    train, tune, test = (
        held_in_memory(s, bundle.image_size, cfg.path, dataset_cache_dir(cfg.dataset))
        for s in (train, tune, test))
    return Splits(train=train, tune=tune, test=test, bundle=bundle, old_classes=old)
