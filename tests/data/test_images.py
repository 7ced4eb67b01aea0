import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import fctlib.data.images as images_module
from fctlib.data.images import ArrayImages, FileImages
from fctlib.io import save_npy_atomic


def _random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ---------------------------------------------------------------- ArrayImages


def test_array_layouts_all_give_the_same_nchw_pixels():
    nchw = _random_uint8((4, 3, 5, 7))
    from_nchw = ArrayImages(nchw, [0, 1, 2, 3])
    from_nhwc = ArrayImages(nchw.transpose(0, 2, 3, 1).copy(), [0, 1, 2, 3])
    from_tensor = ArrayImages(torch.from_numpy(nchw.transpose(0, 2, 3, 1).copy()), [0, 1, 2, 3])
    for images in (from_nchw, from_nhwc, from_tensor):
        assert images.images.shape == (4, 3, 5, 7)
        assert images.channels == 3
        for n in range(4):
            for c in range(3):
                assert np.array_equal(images.image(n)[c].numpy(), nchw[n, c])


def test_gray_nhw_becomes_one_channel():
    nhw = _random_uint8((3, 28, 28))
    images = ArrayImages(nhw, [5, 6, 7])
    assert images.channels == 1
    assert images.image(2).shape == (1, 28, 28)
    assert np.array_equal(images.image(2)[0].numpy(), nhw[2])
    assert images.labels.dtype == np.int64 and images.labels.tolist() == [5, 6, 7]
    assert len(images) == 3 and images.image_size == (28, 28)


def test_ambiguous_layout_needs_explicit_layout():
    data = _random_uint8((2, 3, 4, 3))
    with pytest.raises(ValueError, match="layout="):
        ArrayImages(data, [0, 1])
    as_nhwc = ArrayImages(data, [0, 1], layout="NHWC")
    assert as_nhwc.images.shape == (2, 3, 3, 4)
    assert np.array_equal(as_nhwc.image(1)[2].numpy(), data[1, :, :, 2])
    assert ArrayImages(data, [0, 1], layout="NCHW").images.shape == (2, 3, 4, 3)


@pytest.mark.parametrize(
    "data, labels, message",
    [
        (np.zeros((2, 4, 4), np.float32), [0, 1], "uint8"),
        (np.zeros((2, 4), np.uint8), [0, 1], "3-D"),
        (np.zeros((2, 2, 4, 4), np.uint8), [0, 1], "channel"),
        (np.zeros((2, 4, 4), np.uint8), [0, 1, 2], "3 labels"),
        (np.zeros((2, 4, 4), np.uint8), [0, -1], ">= 0"),
        (np.zeros((2, 4, 4), np.uint8), [0.5, 1], "integer"),
        (np.zeros((2, 4, 4), np.uint8), [[0, 1]], "1-D"),
    ],
)
def test_array_images_reject_bad_input(data, labels, message):
    with pytest.raises(ValueError, match=message):
        ArrayImages(data, labels)


def test_bad_layout_name_and_wrong_ndim_for_layout():
    with pytest.raises(ValueError, match="layout must be one of"):
        ArrayImages(np.zeros((2, 4, 4), np.uint8), [0, 1], layout="HWC")
    with pytest.raises(ValueError, match="needs 4-D"):
        ArrayImages(np.zeros((2, 4, 4), np.uint8), [0, 1], layout="NCHW")


def test_image_index_bounds():
    images = ArrayImages(_random_uint8((3, 4, 4)), [0, 1, 2])
    assert torch.equal(images.image(-1), images.image(2))
    with pytest.raises(IndexError, match="out of range"):
        images.image(3)


def test_array_subset_reindexes_and_copies():
    data = _random_uint8((5, 1, 4, 4))
    images = ArrayImages(data, [0, 1, 2, 3, 4])
    sub = images.subset([4, 1])
    assert isinstance(sub, ArrayImages)
    assert sub.labels.tolist() == [4, 1]
    assert np.array_equal(sub.image(0).numpy(), data[4])
    sub.images[0].fill_(0)
    assert np.array_equal(images.image(4).numpy(), data[4])
    assert len(images.subset([])) == 0
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        images.subset([5])
    with pytest.raises(ValueError, match="boolean mask"):
        images.subset(np.ones(5, dtype=bool))


def test_with_labels_shares_pixels():
    images = ArrayImages(_random_uint8((3, 4, 4)), [0, 1, 2])
    relabelled = images.with_labels([9, 8, 7])
    assert relabelled.labels.tolist() == [9, 8, 7]
    assert relabelled.images.data_ptr() == images.images.data_ptr()
    with pytest.raises(ValueError, match="2 labels"):
        images.with_labels([0, 1])


def test_array_digest_names_pixels_and_labels_not_their_layout():
    nchw = _random_uint8((4, 3, 5, 7))
    labels = [0, 1, 2, 3]
    reference = ArrayImages(nchw, labels).digest()
    assert ArrayImages(nchw.transpose(0, 2, 3, 1).copy(), labels).digest() == reference
    assert ArrayImages(torch.from_numpy(nchw), labels).digest() == reference
    one_pixel = nchw.copy()
    one_pixel[3, 2, 4, 6] ^= 1
    swapped = nchw[[1, 0, 2, 3]]
    others = [ArrayImages(one_pixel, labels), ArrayImages(nchw, [0, 1, 3, 2]),
              ArrayImages(swapped, [1, 0, 2, 3]),  # the same pairs in another order
              ArrayImages(nchw.reshape(4, 3, 7, 5), labels)]  # the same bytes, other shape
    digests = {reference, *(images.digest() for images in others)}
    assert len(digests) == 1 + len(others)


# ---------------------------------------------------------------- FileImages


@pytest.fixture()
def image_files(tmp_path):
    """A gray PNG (odd size), an RGB PNG and an RGB JPEG; returns (paths, pixel arrays)."""
    gray = _random_uint8((13, 17), seed=1)
    rgb = _random_uint8((9, 11, 3), seed=2)
    jpeg = np.full((20, 24, 3), 120, np.uint8)
    paths = [tmp_path / "gray.png", tmp_path / "rgb.png", tmp_path / "photo.jpg"]
    Image.fromarray(gray, mode="L").save(paths[0])
    Image.fromarray(rgb, mode="RGB").save(paths[1])
    Image.fromarray(jpeg, mode="RGB").save(paths[2], quality=95)
    return paths, [gray, rgb, jpeg]


def test_file_images_decode_to_requested_channels(image_files):
    paths, pixels = image_files
    rgb = FileImages(paths, [0, 1, 2], channels=3)
    assert rgb.image(0).shape == (3, 13, 17)
    assert all(np.array_equal(rgb.image(0)[c].numpy(), pixels[0]) for c in range(3))
    assert np.array_equal(rgb.image(1).numpy(), pixels[1].transpose(2, 0, 1))
    assert rgb.image(2).dtype == torch.uint8
    assert np.abs(rgb.image(2).numpy().astype(int) - 120).max() <= 2  # JPEG is lossy
    gray = FileImages([str(p) for p in paths], [0, 1, 2], channels=1)
    expected = np.asarray(Image.fromarray(pixels[1]).convert("L"))
    assert np.array_equal(gray.image(1)[0].numpy(), expected)
    assert gray.image(2).shape == (1, 20, 24)


def test_file_images_subset_and_errors(image_files, tmp_path):
    paths, _ = image_files
    files = FileImages(paths, [0, 1, 2])
    sub = files.subset([2, 0])
    assert isinstance(sub, FileImages)
    assert sub.paths == [paths[2], paths[0]] and sub.labels.tolist() == [2, 0]
    assert files.with_labels([5, 5, 5]).paths == files.paths
    with pytest.raises(ValueError, match="channels must be 1"):
        FileImages(paths, [0, 1, 2], channels=2)
    missing = FileImages([tmp_path / "nope.png"], [0])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        missing.image(0)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.png"):
        FileImages([tmp_path / "broken.png"], [0]).image(0)


def test_file_digest_names_the_files_below_their_folder_not_where_it_is(image_files, tmp_path):
    paths, _ = image_files
    files = FileImages(paths, [0, 1, 2])
    moved = tmp_path / "moved" / "deeper"
    moved.mkdir(parents=True)
    for path in paths:
        shutil.copy(path, moved / path.name)
    assert FileImages([moved / p.name for p in paths], [0, 1, 2]).digest() == files.digest()
    shutil.copy(paths[2], moved / "other.jpg")
    renamed = [moved / paths[0].name, moved / paths[1].name, moved / "other.jpg"]
    others = [FileImages(paths, [0, 1, 1]), FileImages(paths, [0, 1, 2], channels=1),
              FileImages([paths[1], paths[0], paths[2]], [1, 0, 2]),  # another order
              FileImages(renamed, [0, 1, 2])]
    digests = {files.digest(), *(images.digest() for images in others)}
    assert len(digests) == 1 + len(others)


def test_file_digest_changes_when_a_file_is_rewritten_at_another_size(image_files):
    paths, _ = image_files
    before = FileImages(paths, [0, 1, 2]).digest()
    Image.fromarray(_random_uint8((9, 12, 3), seed=5), mode="RGB").save(paths[1])
    assert FileImages(paths, [0, 1, 2]).digest() != before


def test_to_arrays_resizes_like_pil_and_caches(image_files, tmp_path):
    paths, pixels = image_files
    files = FileImages(paths, [0, 1, 2], channels=3)
    cache = tmp_path / "cache" / "files-16px.npy"
    arrays = files.to_arrays(16, cache)
    assert arrays.images.shape == (3, 3, 16, 16) and arrays.labels.tolist() == [0, 1, 2]
    expected = np.asarray(
        Image.fromarray(pixels[1]).resize((16, 16), Image.Resampling.BILINEAR)
    ).transpose(2, 0, 1)
    assert np.array_equal(arrays.image(1).numpy(), expected)
    assert cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary files left
    for path in paths:
        path.unlink()  # the cache alone must now serve the pixels
    again = files.to_arrays(16, cache)
    assert torch.equal(again.images, arrays.images)


def test_to_arrays_keeps_native_size_pixels_and_rebuilds_a_stale_cache(tmp_path):
    pixels = _random_uint8((2, 8, 8), seed=3)
    paths = [tmp_path / f"{i}.png" for i in range(2)]
    for path, image in zip(paths, pixels, strict=True):
        Image.fromarray(image, mode="L").save(path)
    cache = tmp_path / "stale.npy"
    np.save(cache, np.zeros((5, 1, 8, 8), np.uint8))  # wrong row count: must be ignored
    arrays = FileImages(paths, [0, 1], channels=1).to_arrays(8, cache)
    assert np.array_equal(arrays.images[:, 0].numpy(), pixels)
    assert np.load(cache).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="positive"):
        FileImages(paths, [0, 1]).to_arrays(0)


def _jpegs(folder, count, seed=0):
    """`count` distinct 20 x 20 RGB JPEGs (resized to 16 px when decoded to arrays)."""
    rng = np.random.default_rng(seed)
    paths = [folder / f"{i:04d}.jpg" for i in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path, quality=80)
    return paths


def test_decoding_processes_fill_the_array_one_process_fills(tmp_path, monkeypatch):
    """Three processes (each image decoded alone, by the same Pillow: the same bytes) give the
    array that this process gives, in order; the chunks leave a partial one at the end."""
    paths = _jpegs(tmp_path, 2 * images_module.DECODE_CHUNK + 7)
    files = FileImages(paths, np.arange(len(paths)) % 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    alone = files.to_arrays(16).images
    assert torch.equal(alone[5], files.resized_image(5, 16))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    forked = []
    monkeypatch.setattr(images_module.multiprocessing, "get_context",
                        lambda method, real=images_module.multiprocessing.get_context:
                        forked.append(method) or real(method))
    shared = files.to_arrays(16).images
    assert forked == ["fork"] and torch.equal(shared, alone)


def test_a_missing_file_in_a_decoding_process_is_named(tmp_path, monkeypatch):
    paths = _jpegs(tmp_path, images_module.DECODE_CHUNK + 10)
    paths[-3].unlink()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with pytest.raises(FileNotFoundError, match=paths[-3].name):
        FileImages(paths, np.zeros(len(paths), int)).to_arrays(16)


def test_save_npy_atomic_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.npy"
    save_npy_atomic(np.arange(4), target)
    assert np.load(target).tolist() == [0, 1, 2, 3]

    def broken_save(fh, array):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(images_module.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_npy_atomic(np.arange(9), target)
    monkeypatch.undo()
    assert np.load(target).tolist() == [0, 1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
