"""The update across data sets (suite/cross_dataset.py) and its report table."""

import numpy as np
import pytest
import torch

from fctlib.data.images import ArrayImages
from fctlib.data.sources import DataBundle
from fctlib.errors import DataError
from fctlib.experiment.records import CrossDatasetRecord
from fctlib.report.cross_dataset import cross_dataset_rows, cross_dataset_table
from fctlib.suite.cross_dataset import CrossDatasetRun, joined


def bundle(n, classes, channels, size, value, names):
    images = torch.full((n, channels, size, size), value, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    labels = np.arange(n) % classes
    split = ArrayImages(images, labels, layout="NCHW")
    return DataBundle(split, split, classes, names, channels, size, (0.0,) * channels,
                      (1.0,) * channels, f"set {value}")


def test_joined_puts_the_second_sets_classes_after_the_firsts_in_its_format():
    first = bundle(6, 3, 3, 8, 10, ["a", "b", "c"])
    second = bundle(4, 2, 1, 4, 200, ["0", "1"])
    union = joined(first, second, "digits")
    assert union.num_classes == 5 and union.class_names == ["a", "b", "c", "digits 0", "digits 1"]
    assert union.train.images.shape == (10, 3, 8, 8) and union.channels == 3
    np.testing.assert_array_equal(union.train.labels, [0, 1, 2, 0, 1, 2, 3, 4, 3, 4])
    assert bool((union.train.images[6:, :, 4:, 4:] == 200).all())  # resized, gray repeated
    assert union.source == "set 10 + set 200"
    # the normalisation is the joined training images' own
    pixels = union.train.images.float() / 255
    assert union.mean[1] == pytest.approx(pixels[:, 1].mean().item(), rel=1e-5)


def test_joined_refuses_sets_on_disk():
    from fctlib.data.images import FileImages

    first = bundle(6, 3, 3, 8, 10, ["a", "b", "c"])
    on_disk = DataBundle(FileImages([], np.zeros(0, dtype=np.int64)), first.test, 3,
                         ["a", "b", "c"], 3, 8, (0.0,) * 3, (1.0,) * 3, "files")
    with pytest.raises(DataError, match="held in memory"):
        joined(on_disk, first, "x")


def test_the_updates_artifacts_live_apart_with_keys_of_both_data_sets(smoke_run):
    cross = CrossDatasetRun(smoke_run)
    assert cross.root == smoke_run.root / "cross-dataset"
    assert cross.results_dir == smoke_run.results_dir
    assert cross.data_key() != smoke_run.data_key()
    first = smoke_run.splits.bundle.num_classes
    assert cross.splits.old_classes == list(range(first))
    assert cross.splits.bundle.num_classes == first + 10  # smoke's other_data: Fashion-MNIST
    assert set(np.unique(cross.splits.test.labels)) == set(range(first + 10))


def test_report_table_has_each_case_by_class_split_and_distance():
    metrics = {"top1": 0.5, "top5": 0.7, "mAP": 0.3}

    def record(shift):
        cases = {case: {split: {m: v + shift for m, v in metrics.items()}
                        for split in ("all", "old", "new")}
                 for case in ("old/old", "new/new", "fct/side")}
        return CrossDatasetRecord(cases=cases, by_distance={"l2": cases, "cosine": cases},
                                  source="A + B", other_data="mnist", bct="bct:openbct-g:1",
                                  splits=[])

    records = {0: {"cross_dataset": record(0.0)}, 1: {"cross_dataset": record(0.1)},
               2: {"old": None}}
    long = cross_dataset_rows(records)
    assert len(long) == 2 * 2 * 3 * 3  # seeds x distances x cases x splits
    table = cross_dataset_table(long)
    row = table[(table["case"] == "fct/side") & (table["distance"] == "l2")
                & (table["split"] == "new")].iloc[0]
    assert row["top1"] == pytest.approx(55.0) and row["seeds"] == 2
    assert row["top1_std"] == pytest.approx(np.std([50.0, 60.0], ddof=1), abs=0.01)
