"""The update across data sets (notebook 11): the old model learns data set A (the preset's, every
class of it), the new model A and B (the preset's `other_data`, its classes added after A's), and
the gallery and queries are the common test set, A's test images and B's. Side-info learns A's
training images without labels, as in the main comparison; BCT trains the variant and weight the
main run chose on its tune split; FCT fits h without and with side-info. The class split of every
table is A's classes (`old`) against B's (`new`).

FCT's abstract claims compatibility "when the new and old models are trained across different
datasets"; the suite's main comparison only ever adds classes of the same data set.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from fctlib.data.images import ArrayImages
from fctlib.data.run_splits import Splits, split_bundle
from fctlib.data.sources import DataBundle, in_format, load_dataset
from fctlib.data.spec import DatasetSpec
from fctlib.data.transforms import channel_stats
from fctlib.errors import DataError
from fctlib.experiment.store import fingerprint
from fctlib.methods.bct import BCTName, choose
from fctlib.methods.fct import TransformationName, transformed_gallery
from fctlib.suite.run import Run

FOLDER = "cross-dataset"  # the update's artifacts: runs/<preset>/seed<k>/cross-dataset/


def joined(first: DataBundle, second: DataBundle, second_name: str) -> DataBundle:
    """One data set of `first`'s classes, then `second`'s (its labels shifted past `first`'s,
    its images in `first`'s channels and size); train and test splits each concatenated, the
    normalisation measured on the joined training images."""
    if not isinstance(first.train, ArrayImages) or not isinstance(second.train, ArrayImages):
        raise DataError("the cross-dataset update joins data sets held in memory (fashion-mnist, "
                        "mnist, tiny-imagenet-100, cifar100)")
    size, channels, shift = first.image_size, first.channels, first.num_classes

    def join(a: ArrayImages, b: ArrayImages) -> ArrayImages:
        b = in_format(b, channels, size)
        return ArrayImages(torch.cat([a.images, b.images]),
                           np.concatenate([a.labels, b.labels + shift]), layout="NCHW")

    train, test = join(first.train, second.train), join(first.test, second.test)
    mean, std = channel_stats(train, max_images=None, seed=0)
    names = [*first.class_names, *(f"{second_name} {n}" for n in second.class_names)]
    return DataBundle(train=train, test=test, num_classes=len(names), class_names=names,
                      channels=channels, image_size=size, mean=mean, std=std,
                      source=f"{first.source} + {second.source}")


class CrossDatasetRun(Run):
    """The cross-dataset update of a run's preset and seed: its own artifacts (old on A, new on
    A + B) under `<run folder>/cross-dataset/`, its records beside the run's."""

    def __init__(self, run: Run):
        super().__init__(run.preset, run.seed, runs_dir=run.root.parent.parent,
                         results_dir=run.results_dir, device=run.device)
        self.root = run.root / FOLDER

    @cached_property
    def first(self) -> DataBundle:
        """Data set A, the preset's."""
        return load_dataset(self.preset.data.dataset)

    @cached_property
    def splits(self) -> Splits:
        """A and B joined, carved as the preset carves its data; the old classes are A's."""
        data = self.preset.data
        second = load_dataset(DatasetSpec(name=self.preset.other_data,
                                          cache_dir=data.dataset.cache_dir))
        bundle = joined(self.first, second, self.preset.other_data)
        return split_bundle(data, bundle, list(range(self.first.num_classes)))

    def data_key(self) -> str:
        """The run's data key with the second data set: A's config, what A and B joined hold, B's
        name, the class split."""
        return fingerprint(FOLDER, super().data_key(), self.preset.other_data)


def update_cases(run: Run) -> tuple[CrossDatasetRun, BCTName, dict[str, tuple]]:
    """The update's run, the BCT model it trains (the main run's choice on tune) and its cases
    on the common test set: old/old, new/new, bct/old, bct/bct, fct/no-side, fct/side."""
    variant, weight, _ = choose(run)
    cross = CrossDatasetRun(run)
    bct = BCTName(variant, weight)
    old, new = cross.embeddings("old", "test"), cross.embeddings("new", "test")
    compatible = cross.embeddings(bct, "test")
    dim = cross.preset.side_info.model.embedding_dim
    return cross, bct, {
        "old/old": (old, old), "new/new": (new, new),
        "bct/old": (compatible, old), "bct/bct": (compatible, compatible),
        "fct/no-side": (new, transformed_gallery(cross, TransformationName(0))),
        "fct/side": (new, transformed_gallery(cross, TransformationName(dim)))}
