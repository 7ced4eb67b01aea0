import gzip
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets
from PIL import Image

import fctlib.data.archive
import fctlib.data.sources as datasets
from fctlib.data.archive import ChecksumError
from fctlib.data.images import ArrayImages, FileImages
from fctlib.data.sources import (
    TINY_IMAGENET_ENV,
    DataBundle,
    convert_channels,
    load_dataset,
    read_idx,
    tiny_imagenet_archives,
)
from fctlib.data.spec import DatasetSpec
from fctlib.paths import project_root

# ------------------------------------------------------------------ builders of small data sets


def write_idx(path, array):
    """An IDX file (unsigned bytes), gzipped when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_fashion(folder, suffix=".gz", n_train=20, n_test=10):
    """The four Fashion-MNIST idx files with n images each; pixel (0, 0) holds the row number."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)


def write_cifar(folder, n_train=12, n_test=5):
    """A cifar-100-python folder in torchvision's pickle format; returns the train data rows."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows[split] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batch = {b"data": rows[split], b"fine_labels": [i % 100 for i in range(n)],
                 b"coarse_labels": [0] * n}
        (folder / split).write_bytes(pickle.dumps(batch))
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return rows


def save_image(path, shape, value=None, seed=0):
    """A PNG/JPEG at `path`: gray for 2-D shapes, RGB for 3-D, constant `value` or random."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if value is None:
        pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    else:
        pixels = np.full(shape, value, np.uint8)
    Image.fromarray(pixels, mode="L" if len(shape) == 2 else "RGB").save(path)


TINY_WNIDS = ["n01000001", "n01000002", "n01000003", "n01000004"]


def class_colour(label):
    return 30 + 60 * label


def write_tiny_imagenet(folder, train_per_class=3, val_per_class=2):
    """Three archives in Tiny-ImageNet-100's real layout (solid-colour JPEGs per class) plus
    SHA256SUMS; returns the folder."""
    tree = folder / "tree" / "tiny-imagenet-100"
    for label, wnid in enumerate(TINY_WNIDS):
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for i in range(count):
                path = tree / split / wnid / f"{wnid if split == 'train' else 'val'}_{i}.JPEG"
                save_image(path, (64, 64, 3), value=class_colour(label))
    (tree / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    words = "".join(f"{w}\tthing {w[-1]}, other name\n" for w in TINY_WNIDS)
    (tree / "words.txt").write_text(words)
    archives = folder / "archives"
    archives.mkdir()
    parts = {
        "train-part1.tar.gz": [f"train/{w}" for w in TINY_WNIDS[:2]],
        "train-part2.tar.gz": [f"train/{w}" for w in TINY_WNIDS[2:]],
        "val.tar.gz": ["val", "wnids.txt", "words.txt"],
    }
    for name, members in parts.items():
        with tarfile.open(archives / name, "w:gz") as tar:
            for member in members:
                tar.add(tree / member, arcname=f"tiny-imagenet-100/{member}")
    sums = [f"{hashlib.sha256((archives / n).read_bytes()).hexdigest()}  {n}" for n in parts]
    (archives / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return archives


# ------------------------------------------------------------------ specs and helpers


def test_dataset_spec_validates_its_fields():
    with pytest.raises(ValueError, match="unknown data set name 'kmnist'"):
        DatasetSpec(name="kmnist")
    with pytest.raises(ValueError, match="test_fraction"):
        DatasetSpec(name="folder-split", root="x", test_fraction=1.0)
    with pytest.raises(ValueError, match="image_size"):
        DatasetSpec(name="fashion-mnist", image_size=0)
    with pytest.raises(ValueError, match="channels"):
        DatasetSpec(name="fashion-mnist", channels=2)
    with pytest.raises(ValueError, match="test_folder"):
        DatasetSpec(name="imagefolder", root="x", test_folder="valid")
    with pytest.raises(ValueError, match="needs root="):
        DatasetSpec(name="npz")


def test_project_root_holds_pyproject():
    assert project_root() == Path(__file__).resolve().parents[2]
    assert (project_root() / "pyproject.toml").is_file()


def test_read_idx_roundtrip_and_errors(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", array)
    write_idx(tmp_path / "y", np.arange(7, dtype=np.uint8))
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)
    assert read_idx(tmp_path / "y").tolist() == list(range(7))
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "int32").write_bytes(bytes([0, 0, 0x0C, 1]) + np.asarray([1], ">i4").tobytes())
    with pytest.raises(ValueError, match="unsigned byte"):
        read_idx(tmp_path / "int32")
    (tmp_path / "short").write_bytes((tmp_path / "y").read_bytes()[:-2])
    with pytest.raises(ValueError, match="holds 5 bytes"):
        read_idx(tmp_path / "short")


def test_convert_channels_gray_to_rgb_and_back_like_pil():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    images = ArrayImages(rgb, [0, 1, 2])
    gray = convert_channels(images, 1)
    expected = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])
    assert gray.channels == 1 and gray.labels.tolist() == [0, 1, 2]
    assert np.abs(gray.images[:, 0].numpy().astype(int) - expected).max() <= 1
    back = convert_channels(gray, 3)
    assert back.channels == 3
    assert all(np.array_equal(back.images[:, c], gray.images[:, 0]) for c in range(3))
    assert convert_channels(images, 3) is images


# ------------------------------------------------------------------ Fashion-MNIST


def test_real_fashion_mnist(fashion_mnist):
    bundle = fashion_mnist
    assert isinstance(bundle, DataBundle)
    assert isinstance(bundle.train, ArrayImages)
    assert bundle.train.images.shape == (60000, 1, 28, 28)
    assert bundle.test.images.shape == (10000, 1, 28, 28)
    assert np.bincount(bundle.train.labels).tolist() == [6000] * 10
    assert np.bincount(bundle.test.labels).tolist() == [1000] * 10
    assert (bundle.num_classes, bundle.channels, bundle.image_size) == (10, 1, 28)
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"
    # the published Fashion-MNIST training statistics
    assert bundle.mean[0] == pytest.approx(0.2860, abs=1e-4)
    assert bundle.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert "fashion-mnist" in bundle.source.lower()


def test_fashion_mnist_as_rgb_repeats_the_gray_channel(fashion_mnist):
    bundle = load_dataset(DatasetSpec(name="fashion-mnist", download=False, channels=3))
    assert bundle.channels == 3 and bundle.train.images.shape == (60000, 3, 28, 28)
    assert np.array_equal(bundle.test.images[:5, 2], fashion_mnist.test.images[:5, 0])
    assert bundle.mean == pytest.approx(fashion_mnist.mean * 3)


@pytest.mark.parametrize("layout", ["plain", "torchvision"])
def test_fashion_mnist_from_a_given_root(tmp_path, layout):
    folder = tmp_path / "fm" if layout == "plain" else tmp_path / "fm" / "FashionMNIST" / "raw"
    write_fashion(folder, suffix=".gz" if layout == "plain" else "")
    bundle = load_dataset(DatasetSpec(name="fashion-mnist", root=str(tmp_path / "fm")))
    assert len(bundle.train) == 20 and len(bundle.test) == 10
    assert bundle.train.images[:, 0, 0, 0].tolist() == list(range(20))
    assert bundle.train.labels.tolist() == [i % 10 for i in range(20)]
    assert str(folder) in bundle.source


def test_fashion_mnist_root_that_does_not_exist_is_refused(tmp_path, monkeypatch):
    write_fashion(tmp_path / "system")  # a copy it must not fall back to
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    spec = DatasetSpec(name="fashion-mnist", root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError, match="nowhere .data.dataset.root. is not a folder"):
        load_dataset(spec)


def test_fashion_mnist_missing_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    write_fashion(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    spec = DatasetSpec(name="fashion-mnist", root=str(tmp_path / "partial"),
                       cache_dir=str(tmp_path / "cache"), download=False)
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(spec)
    message = str(error.value)
    for place in (tmp_path / "partial", tmp_path / "system", tmp_path / "cache" / "FashionMNIST"):
        assert str(place) in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "make data" in message
    assert "download=False" in message


def test_fashion_mnist_failed_download_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    spec = DatasetSpec(name="fashion-mnist", cache_dir=str(tmp_path / "cache"), download=True)
    with pytest.raises(FileNotFoundError, match="download failed: network unreachable"):
        load_dataset(spec)


# ------------------------------------------------------------------ CIFAR-100


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar100_pickles_in_torchvision_format(tmp_path, point_at):
    rows = write_cifar(tmp_path / "cifar-100-python")
    root = tmp_path if point_at == "parent" else tmp_path / "cifar-100-python"
    bundle = load_dataset(DatasetSpec(name="cifar100", root=str(root), download=False))
    assert bundle.train.images.shape == (12, 3, 32, 32) and len(bundle.test) == 5
    assert bundle.num_classes == 100 and bundle.class_names[7] == "class7"
    assert bundle.train.labels.tolist() == list(range(12))
    image = bundle.train.image(4).numpy()
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert image[c, h, w] == rows["train"][4, c * 1024 + h * 32 + w]
    assert (bundle.channels, bundle.image_size) == (3, 32)


def test_cifar100_missing_or_malformed(tmp_path):
    spec = DatasetSpec(name="cifar100", root=str(tmp_path), download=False)
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(spec)
    assert str(tmp_path / "cifar-100-python") in str(error.value)
    write_cifar(tmp_path / "cifar-100-python")
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps({b"data": []}))
    with pytest.raises(ValueError, match="fine_labels"):
        load_dataset(spec)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match="3072"):
        load_dataset(spec)


# ------------------------------------------------------------------ npz


def _npz_arrays(layout):
    nchw = np.random.default_rng(2).integers(0, 256, (6, 3, 5, 7), dtype=np.uint8)
    images = nchw if layout == "NCHW" else nchw.transpose(0, 2, 3, 1)
    return nchw, {"train_images": images[:4], "train_labels": np.array([0, 1, 2, 1]),
                  "test_images": images[4:], "test_labels": np.array([2, 0])}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_npz_rgb_layouts(tmp_path, layout):
    nchw, arrays = _npz_arrays(layout)
    np.savez(tmp_path / "d.npz", **arrays)
    bundle = load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "d.npz")))
    assert np.array_equal(bundle.train.images.numpy(), nchw[:4])
    assert np.array_equal(bundle.test.images.numpy(), nchw[4:])
    assert bundle.num_classes == 3 and bundle.class_names == ["0", "1", "2"]
    assert (bundle.channels, bundle.image_size) == (3, 5)
    pixels = nchw[:4].transpose(1, 0, 2, 3).reshape(3, -1) / 255
    assert np.allclose(bundle.mean, pixels.mean(axis=1)) and np.allclose(bundle.std, pixels.std(1))


def test_npz_gray_nhw_with_class_names(tmp_path):
    gray = np.random.default_rng(3).integers(0, 256, (5, 9, 9), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", train_images=gray[:3], train_labels=[0, 1, 0],
             test_images=gray[3:], test_labels=[1, 1], class_names=np.array(["cat", "dog"]))
    bundle = load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "g.npz"), image_size=18))
    assert bundle.channels == 1 and bundle.train.images.shape == (3, 1, 9, 9)
    assert bundle.class_names == ["cat", "dog"] and bundle.image_size == 18


def test_npz_errors_name_the_problem(tmp_path):
    _, arrays = _npz_arrays("NCHW")
    np.savez(tmp_path / "missing.npz", train_images=arrays["train_images"])
    with pytest.raises(ValueError, match=r"lacks arrays \['train_labels', 'test_images'"):
        load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "missing.npz")))
    np.savez(tmp_path / "float.npz", **{**arrays, "test_images": arrays["test_images"] / 255})
    with pytest.raises(ValueError, match="test_images.*uint8"):
        load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "float.npz")))
    np.savez(tmp_path / "sizes.npz", **{**arrays, "test_images": arrays["test_images"][:, :, :4]})
    with pytest.raises(ValueError, match="same shape"):
        load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "sizes.npz")))
    np.savez(tmp_path / "names.npz", **arrays, class_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="only 2 class names"):
        load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "names.npz")))
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_dataset(DatasetSpec(name="npz", root=str(tmp_path / "nothing.npz")))


# ------------------------------------------------------------------ image folders


def write_image_tree(root):
    """train: cat (2 RGB PNGs, odd sizes), dog (gray JPEG, RGB PNG), eel (1 PNG); val: cat, eel."""
    save_image(root / "train" / "cat" / "b.png", (13, 17, 3), seed=1)
    save_image(root / "train" / "cat" / "a.png", (20, 15, 3), seed=2)
    save_image(root / "train" / "dog" / "x.jpg", (16, 16), value=90)
    save_image(root / "train" / "dog" / "y.PNG", (16, 16, 3), seed=3)
    save_image(root / "train" / "eel" / "z.png", (8, 8, 3), seed=4)
    (root / "train" / "eel" / "notes.txt").write_text("not an image")
    save_image(root / "train" / "eel" / ".hidden.png", (8, 8, 3), seed=5)
    save_image(root / "val" / "cat" / "c.png", (10, 10, 3), seed=6)
    save_image(root / "val" / "eel" / "e.jpeg", (12, 9, 3), seed=7)


def test_imagefolder_train_and_val(tmp_path):
    write_image_tree(tmp_path)
    bundle = load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path)))
    assert isinstance(bundle.train, FileImages) and isinstance(bundle.test, FileImages)
    assert bundle.class_names == ["cat", "dog", "eel"] and bundle.num_classes == 3
    assert [p.name for p in bundle.train.paths] == ["a.png", "b.png", "x.jpg", "y.PNG", "z.png"]
    assert bundle.train.labels.tolist() == [0, 0, 1, 1, 2]
    assert [p.name for p in bundle.test.paths] == ["c.png", "e.jpeg"]
    assert bundle.test.labels.tolist() == [0, 2]
    assert bundle.channels == 3 and bundle.train.image(2).shape == (3, 16, 16)
    assert bundle.image_size == 15  # shorter side of the first training image
    assert len(bundle.mean) == 3 and all(0 < m < 1 for m in bundle.mean)
    gray = load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path), channels=1,
                                    image_size=32))
    assert gray.channels == 1 and gray.train.image(0).shape == (1, 20, 15)
    assert gray.image_size == 32 and len(gray.mean) == 1


def test_imagefolder_layout_errors(tmp_path):
    write_image_tree(tmp_path)
    save_image(tmp_path / "test" / "cat" / "t.png", (8, 8, 3))
    spec = DatasetSpec(name="imagefolder", root=str(tmp_path))
    with pytest.raises(ValueError, match="both test/ and val/"):
        load_dataset(spec)
    chosen = load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path), test_folder="test"))
    assert [p.name for p in chosen.test.paths] == ["t.png"]
    save_image(tmp_path / "val" / "fox" / "f.png", (8, 8, 3))
    with pytest.raises(ValueError, match=r"\['fox'\]"):
        load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path), test_folder="val"))
    with pytest.raises(FileNotFoundError, match="train"):
        load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path / "val")))


def test_corrupt_image_is_named_with_what_to_do(tmp_path):
    write_image_tree(tmp_path)
    (tmp_path / "train" / "dog" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(OSError) as err:  # decoded for the channel statistics
        load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path), image_size=8))
    message = str(err.value)
    assert str(tmp_path / "train" / "dog" / "x.jpg") in message
    assert "replace or delete that file" in message and "archive again" in message


def test_folder_split_is_per_class_deterministic_and_disjoint(tmp_path):
    for i in range(10):
        save_image(tmp_path / "ant" / f"{i:02d}.png", (6, 6, 3), seed=i)
    for i in range(5):
        save_image(tmp_path / "bee" / f"{i}.png", (6, 6), seed=i)
    spec = DatasetSpec(name="folder-split", root=str(tmp_path), test_fraction=0.2, seed=7)
    bundle = load_dataset(spec)
    assert bundle.class_names == ["ant", "bee"]
    assert np.bincount(bundle.test.labels).tolist() == [2, 1]
    assert np.bincount(bundle.train.labels).tolist() == [8, 4]
    assert not set(bundle.train.paths) & set(bundle.test.paths)
    assert len(set(bundle.train.paths) | set(bundle.test.paths)) == 15
    # the documented rule: sorted file names, then a permutation seeded by (seed, class id)
    ants = sorted((tmp_path / "ant").iterdir())
    chosen = np.random.default_rng([7, 0]).permutation(10)[:2]
    assert sorted(p for p in bundle.test.paths if p.parent.name == "ant") == sorted(
        ants[i] for i in chosen
    )
    assert load_dataset(spec).test.paths == bundle.test.paths
    other = load_dataset(DatasetSpec(name="folder-split", root=str(tmp_path), seed=8))
    assert other.test.paths != bundle.test.paths


# ------------------------------------------------------------------ Tiny-ImageNet-100


@pytest.fixture()
def tiny_archives(tmp_path):
    return write_tiny_imagenet(tmp_path / "tiny")


def test_tiny_imagenet_extracts_decodes_and_labels_by_wnid(tiny_archives, tmp_path):
    cache = tmp_path / "cache"
    spec = DatasetSpec(name="tiny-imagenet-100", root=str(tiny_archives), cache_dir=str(cache))
    bundle = load_dataset(spec)
    assert isinstance(bundle.train, ArrayImages)
    assert bundle.train.images.shape == (12, 3, 64, 64)
    assert bundle.test.images.shape == (8, 3, 64, 64)
    assert bundle.num_classes == 4 and bundle.class_names[2] == "thing 3, other name"
    assert np.bincount(bundle.train.labels).tolist() == [3, 3, 3, 3]
    assert np.bincount(bundle.test.labels).tolist() == [2, 2, 2, 2]
    for split in (bundle.train, bundle.test):
        for i in range(len(split)):
            colour = split.image(i).float().mean().item()
            assert abs(colour - class_colour(split.labels[i])) < 3  # JPEG of a solid colour
    decoded = cache / "tiny-imagenet-100" / "decoded"
    assert sorted(p.name for p in decoded.iterdir()) == ["train-64px-3ch.npy", "val-64px-3ch.npy"]
    assert str(tiny_archives) in bundle.source and bundle.image_size == 64


def test_tiny_imagenet_second_load_reuses_the_extraction(tiny_archives, tmp_path, monkeypatch):
    spec = DatasetSpec(name="tiny-imagenet-100", root=str(tiny_archives),
                       cache_dir=str(tmp_path / "cache"))
    first = load_dataset(spec)
    wnids = tmp_path / "cache" / "tiny-imagenet-100" / "tiny-imagenet-100" / "wnids.txt"
    mtime = wnids.stat().st_mtime_ns

    def must_not_run(*args):
        raise AssertionError("archives extracted a second time")

    monkeypatch.setattr(fctlib.data.archive, "_extract_tar", must_not_run)
    second = load_dataset(spec)
    assert wnids.stat().st_mtime_ns == mtime
    assert np.array_equal(second.train.images.numpy(), first.train.images.numpy())
    smaller = load_dataset(DatasetSpec(name="tiny-imagenet-100", root=str(tiny_archives),
                                       cache_dir=str(tmp_path / "cache"), image_size=32))
    assert smaller.train.images.shape == (12, 3, 32, 32) and smaller.image_size == 32


def test_tiny_imagenet_corrupt_archive_extracts_nothing(tiny_archives, tmp_path):
    blob = bytearray((tiny_archives / "train-part2.tar.gz").read_bytes())
    blob[100] ^= 0x01
    (tiny_archives / "train-part2.tar.gz").write_bytes(bytes(blob))
    cache = tmp_path / "cache"
    spec = DatasetSpec(name="tiny-imagenet-100", root=str(tiny_archives), cache_dir=str(cache))
    with pytest.raises(ChecksumError) as error:
        load_dataset(spec)
    message = str(error.value)
    assert "train-part2.tar.gz" in message
    assert hashlib.sha256(bytes(blob)).hexdigest() in message and "expected" in message
    assert not cache.exists() or not any(cache.rglob("*"))


def test_tiny_imagenet_root_from_environment(tiny_archives, tmp_path, monkeypatch):
    monkeypatch.setenv(TINY_IMAGENET_ENV, str(tiny_archives))
    spec = DatasetSpec(name="tiny-imagenet-100", cache_dir=str(tmp_path / "cache"))
    assert tiny_imagenet_archives(spec) == tiny_archives
    assert len(load_dataset(spec).train) == 12
    monkeypatch.setenv(TINY_IMAGENET_ENV, str(tmp_path / "moved"))
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(spec)
    assert str(tmp_path / "moved") in str(error.value) and TINY_IMAGENET_ENV in str(error.value)


def test_tiny_imagenet_default_root_is_the_shared_folder(monkeypatch):
    monkeypatch.delenv(TINY_IMAGENET_ENV, raising=False)
    expected = (project_root() / ".." / "shared" / "data" / "tiny-imagenet-100").resolve()
    spec = DatasetSpec(name="tiny-imagenet-100")
    if not (expected / "SHA256SUMS").is_file():
        with pytest.raises(FileNotFoundError, match=str(expected)):
            tiny_imagenet_archives(spec)
    else:
        assert tiny_imagenet_archives(spec) == expected


@pytest.mark.slow
def test_real_tiny_imagenet_100(monkeypatch):
    """The real archives (75 MB) into the project's data cache: ~40 s the first time, ~2 s after."""
    monkeypatch.delenv(TINY_IMAGENET_ENV, raising=False)
    try:
        bundle = load_dataset(DatasetSpec(name="tiny-imagenet-100"))
    except FileNotFoundError as missing:
        pytest.skip(f"Tiny-ImageNet-100 archives not available: {missing}")
    assert bundle.train.images.shape == (50000, 3, 64, 64)
    assert bundle.test.images.shape == (5000, 3, 64, 64)
    assert np.bincount(bundle.train.labels).tolist() == [500] * 100
    assert np.bincount(bundle.test.labels).tolist() == [50] * 100
    assert bundle.class_names[0].startswith("goldfish")
    assert all(0.3 < m < 0.6 for m in bundle.mean) and all(0.2 < s < 0.35 for s in bundle.std)


def test_in_format_converts_channels_and_size_like_a_resize_of_a_constant():
    """A constant image stays that constant at any size and channel count; sizes and channels
    come out as asked and a matching set is returned as it is."""
    from fctlib.data.sources import in_format

    images = ArrayImages(np.full((3, 3, 10, 10), 200, dtype=np.uint8), [0, 1, 2], layout="NCHW")
    gray = in_format(images, 1, 28)
    assert gray.images.shape == (3, 1, 28, 28) and bool((gray.images == 200).all())
    assert in_format(gray, 1, 28) is gray
    rgb = in_format(gray, 3, 5)
    assert rgb.images.shape == (3, 3, 5, 5) and bool((rgb.images == 200).all())
    np.testing.assert_array_equal(rgb.labels, [0, 1, 2])
