import numpy as np
import pytest

from fctlib.data.images import ArrayImages, FileImages
from fctlib.data.splits import (
    carve_tune,
    default_old_classes,
    label_map,
    remap_labels,
    select_classes,
    subsample_per_class,
    validate_class_split,
)


def _images(counts, seed=0):
    """ArrayImages with counts[c] rows of class c, shuffled; pixel (0,0) encodes the row id."""
    labels = np.repeat(np.arange(len(counts)), counts)
    labels = labels[np.random.default_rng(seed).permutation(len(labels))]
    data = np.zeros((len(labels), 1, 2, 2), np.int64)
    data[:, 0, 0, 0] = np.arange(len(labels)) % 256
    data[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return ArrayImages(data.astype(np.uint8), labels)


def _row_ids(images):
    pixels = images.images[:, 0, 0].numpy().astype(np.int64)
    return pixels[:, 0] + 256 * pixels[:, 1]


def test_carve_tune_is_stratified_disjoint_and_complete():
    images = _images([50, 30, 20, 7, 1])
    rest, tune = carve_tune(images, 0.2, seed=0)
    rest_ids, tune_ids = _row_ids(rest), _row_ids(tune)
    assert not set(rest_ids) & set(tune_ids)
    assert sorted(np.concatenate([rest_ids, tune_ids])) == list(range(len(images)))
    assert np.array_equal(rest.labels, images.labels[rest_ids])
    assert np.array_equal(tune.labels, images.labels[tune_ids])
    assert np.bincount(tune.labels, minlength=5).tolist() == [10, 6, 4, 1, 0]
    assert np.all(np.diff(rest_ids) > 0) and np.all(np.diff(tune_ids) > 0)


def test_carve_tune_is_deterministic_and_seed_dependent():
    images = _images([40, 40, 40])
    first = _row_ids(carve_tune(images, 0.25, seed=3)[1])
    assert np.array_equal(first, _row_ids(carve_tune(images, 0.25, seed=3)[1]))
    assert not np.array_equal(first, _row_ids(carve_tune(images, 0.25, seed=4)[1]))


def test_carve_tune_keeps_one_row_each_side_and_rejects_bad_fractions():
    images = _images([2, 3])
    rest, tune = carve_tune(images, 0.01, seed=0)
    assert np.bincount(tune.labels).tolist() == [1, 1]
    assert np.bincount(rest.labels).tolist() == [1, 2]
    rest, tune = carve_tune(images, 0.99, seed=0)
    assert np.bincount(rest.labels).tolist() == [1, 1]
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            carve_tune(images, fraction, seed=0)


def test_carve_tune_on_real_fashion_mnist(fashion_mnist):
    rest, tune = carve_tune(fashion_mnist.train, 0.1, seed=0)
    assert np.bincount(tune.labels).tolist() == [600] * 10
    assert np.bincount(rest.labels).tolist() == [5400] * 10


def test_carve_tune_works_on_file_images(tmp_path):
    files = FileImages([tmp_path / f"{i}.png" for i in range(10)], [0] * 5 + [1] * 5)
    rest, tune = carve_tune(files, 0.4, seed=1)
    assert isinstance(tune, FileImages)
    assert len(tune) == 4 and not set(rest.paths) & set(tune.paths)


def test_subsample_per_class_counts_and_determinism():
    images = _images([30, 5, 12])
    sub = subsample_per_class(images, 10, seed=0)
    assert np.bincount(sub.labels).tolist() == [10, 5, 10]
    ids = _row_ids(sub)
    assert np.array_equal(sub.labels, images.labels[ids]) and np.all(np.diff(ids) > 0)
    assert np.array_equal(ids, _row_ids(subsample_per_class(images, 10, seed=0)))
    assert not np.array_equal(ids, _row_ids(subsample_per_class(images, 10, seed=1)))
    assert subsample_per_class(images, None, seed=0) is images
    with pytest.raises(ValueError, match=">= 1"):
        subsample_per_class(images, 0, seed=0)


def test_select_classes_keeps_labels_and_order():
    images = _images([4, 5, 6, 7])
    sub = select_classes(images, [3, 1])
    expected = np.flatnonzero(np.isin(images.labels, [1, 3]))
    assert np.array_equal(_row_ids(sub), expected)
    assert sorted(set(sub.labels.tolist())) == [1, 3] and len(sub) == 12
    with pytest.raises(ValueError, match="empty"):
        select_classes(images, [])
    assert select_classes(images, [0, 1, 2, 3, 9]) is images  # every row: the set itself


def test_default_old_classes_is_first_half():
    assert default_old_classes(100) == list(range(50))
    assert default_old_classes(11) == list(range(5))
    with pytest.raises(ValueError, match="at least 2"):
        default_old_classes(1)


@pytest.mark.parametrize(
    "old, message",
    [([1, 1, 2], "more than once"), ([0, 10], r"\[0, 10\)"), ([-1], "not class ids"),
     ([], "empty"), (list(range(10)), "all 10")],
)
def test_validate_class_split_rejects(old, message):
    with pytest.raises(ValueError, match=message):
        validate_class_split(old, 10)


def test_validate_class_split_returns_sorted_ids():
    assert validate_class_split(np.array([4, 0, 2]), 10) == [0, 2, 4]


def test_label_map_and_remap_labels():
    assert label_map([7, 3, 5]) == {7: 0, 3: 1, 5: 2}
    with pytest.raises(ValueError, match="distinct"):
        label_map([1, 1])
    images = _images([3, 3, 3, 3])
    sub = select_classes(images, [3, 1])
    remapped = remap_labels(sub, [3, 1])
    assert np.array_equal(remapped.labels, np.where(sub.labels == 3, 0, 1))
    assert remapped.images.data_ptr() == sub.images.data_ptr()
    with pytest.raises(ValueError, match="select_classes"):
        remap_labels(images, [3, 1])


def test_check_class_split_names_the_key_and_classes_without_training_images():
    from types import SimpleNamespace

    from fctlib.data.splits import check_class_split
    from fctlib.errors import DataError

    def bundle(train_labels):
        return SimpleNamespace(num_classes=4, train=SimpleNamespace(labels=np.array(train_labels)),
                               source="arrays in d.npz")

    assert check_class_split(bundle([3, 1, 0, 2]), None) == [0, 1]
    assert check_class_split(bundle([3, 1, 0, 2]), [2, 0]) == [0, 2]
    with pytest.raises(DataError, match=r"data.old_classes: old_classes \[9\] are not class ids"):
        check_class_split(bundle([3, 1, 0, 2]), [9])
    with pytest.raises(DataError, match=r"d.npz: the train split has no images of classes \[3\]"):
        check_class_split(bundle([0, 1, 0, 2]), [0, 1])
