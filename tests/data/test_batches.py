import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import BatchSampler, SequentialSampler

from fctlib.data.batches import ImageBatches, decoded_size, fits_in_memory, held_in_memory
from fctlib.data.images import ArrayImages, FileImages, ImageSet
from fctlib.data.transforms import CropFlipTransform, EvalTransform, SimCLRTransform

CPU = torch.device("cpu")


def _uint8(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _rows(n, batch):
    return BatchSampler(SequentialSampler(range(n)), batch, drop_last=False)


def test_labeled_batches_hold_transformed_images_labels_and_rows():
    data = _uint8((5, 1, 4, 4))
    transform = EvalTransform(4, 1, (0.5,), (0.25,))
    served = ImageBatches(ArrayImages(data, [7, 8, 9, 7, 8]), transform).batches(
        [[3, 1], [4, 0, 2]], CPU)
    assert len(served) == 2
    (x1, y1, r1), (x2, y2, r2) = list(served)
    assert torch.equal(x1, transform(data[[3, 1]])) and torch.equal(x2, transform(data[[4, 0, 2]]))
    assert y1.tolist() == [7, 8] and y2.tolist() == [8, 7, 9]
    assert r1.tolist() == [3, 1] and r2.tolist() == [4, 0, 2]


class _LabelsForbidden(ImageSet):
    """An image set, not in memory, whose labels must not be read."""

    channels = 1

    def __init__(self, data):
        self.data = data

    @property
    def labels(self):
        raise AssertionError("the labels were read")

    def __len__(self):
        return len(self.data)

    def image(self, i):
        return self.data[i]

    def subset(self, indices):
        return _LabelsForbidden(self.data[list(indices)])

    def with_labels(self, labels):
        raise AssertionError("not used")

    def digest(self):
        raise AssertionError("not used")


def test_unlabeled_batches_never_read_labels_and_give_both_views():
    data = _uint8((6, 1, 8, 8))
    pair = SimCLRTransform(8, 1, (0.5,), (0.25,))
    served = ImageBatches(_LabelsForbidden(data), pair, labels=False, path="memory")
    views = list(served.batches(_rows(6, 4), CPU, torch.Generator().manual_seed(0)))
    assert [v[0].shape[0] for v in views] == [4, 2] and len(views[0]) == 2
    again = list(served.batches(_rows(6, 4), CPU, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(views, again, strict=True))


def _files(tmp_path, n=7):
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_uint8((10 + i, 12), seed=i).numpy(), mode="L").save(paths[-1])
    return FileImages(paths, np.arange(n) % 3, channels=1)


def test_streamed_files_give_the_batches_of_files_decoded_into_memory(tmp_path):
    files = _files(tmp_path)
    augment = CropFlipTransform(8, 1, (0.5,), (0.25,), crop_padding=1)
    memory, stream = (ImageBatches(files, augment, path=p) for p in ("memory", "stream"))
    assert (memory.path, stream.path) == ("memory", "stream")
    batches = [[6, 2, 0], [1, 5], [3, 4]]
    for workers in (0, 2):
        a = list(memory.batches(batches, CPU, torch.Generator().manual_seed(1)))
        b = list(stream.batches(batches, CPU, torch.Generator().manual_seed(1), workers))
        for (xa, ya, ra), (xb, yb, rb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ra, rb)
    assert torch.equal(memory._decoded, files.to_arrays(8).images)


def test_auto_path_decodes_what_fits_in_memory(tmp_path, monkeypatch):
    files = _files(tmp_path, n=3)
    assert decoded_size(files, 8) == 3 * 64 and fits_in_memory(files, 8)
    augment = EvalTransform(8, 1, (0.5,), (0.25,))
    assert ImageBatches(files, augment).path == "memory"
    monkeypatch.setattr("fctlib.data.batches.MEMORY_SHARE", 0.0)
    assert ImageBatches(files, augment).path == "stream"
    arrays = ArrayImages(_uint8((3, 1, 8, 8)), [0, 1, 2])
    assert ImageBatches(arrays, augment, path="stream").path == "memory"  # already in memory
    with pytest.raises(ValueError, match="path must be one of"):
        ImageBatches(arrays, augment, path="disk")


def _never_decoded(*args):
    raise AssertionError("decoded again")


def test_a_file_changed_in_place_is_decoded_again(tmp_path):
    """The decoded cache is keyed by each file's size and modification time beside its path: an
    image rewritten under its name is not served from the old pixels, even at the same size."""
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for i, path in enumerate(paths):  # stored uncompressed: the size follows the image's shape
        Image.fromarray(_uint8((12, 12), seed=i).numpy(), mode="L").save(path, compress_level=0)
    files = FileImages(paths, [0, 1, 2], channels=1)
    held = held_in_memory(files, 8, "memory", tmp_path / "cache")
    before = paths[1].stat()
    Image.fromarray(255 - _uint8((12, 12), seed=1).numpy(), mode="L").save(paths[1],
                                                                            compress_level=0)
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # a later write
    assert paths[1].stat().st_size == before.st_size
    again = held_in_memory(files, 8, "memory", tmp_path / "cache")
    assert torch.equal(again.images, files.to_arrays(8).images)
    assert not torch.equal(again.images[1], held.images[1])
    assert torch.equal(again.images[[0, 2]], held.images[[0, 2]])
    assert len(list((tmp_path / "cache" / "decoded").iterdir())) == 2


def test_held_in_memory_decodes_files_once_through_a_cache(tmp_path, monkeypatch):
    (tmp_path / "files").mkdir()
    files = _files(tmp_path / "files")
    held = held_in_memory(files, 8, "auto", tmp_path / "cache")
    assert isinstance(held, ArrayImages) and torch.equal(held.images, files.to_arrays(8).images)
    assert held.labels.tolist() == files.labels.tolist()
    assert len(list((tmp_path / "cache" / "decoded").iterdir())) == 1
    with monkeypatch.context() as patched:  # the second load must come from the cache alone
        patched.setattr("fctlib.data.images.decode_in_processes", _never_decoded)
        again = held_in_memory(files, 8, "memory", tmp_path / "cache")
    assert torch.equal(again.images, held.images)
    assert held_in_memory(files, 8, "stream", tmp_path / "cache") is files
    monkeypatch.setattr("fctlib.data.batches.MEMORY_SHARE", 0.0)
    assert held_in_memory(files, 8, "auto", tmp_path / "cache") is files
    assert held_in_memory(held, 8, "auto", tmp_path / "cache") is held
    with pytest.raises(ValueError, match="path must be one of"):
        held_in_memory(files, 8, "disk", tmp_path / "cache")
