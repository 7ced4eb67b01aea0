"""Load a data set by name into train/test image sets: `load_dataset(DatasetSpec(...))`."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from fctlib.data import mnist_digits
from fctlib.data.archive import extract_verified
from fctlib.data.images import ArrayImages, FileImages, ImageSet
from fctlib.data.spec import DatasetSpec
from fctlib.data.splits import carve_tune
from fctlib.data.transforms import channel_stats
from fctlib.errors import DataError
from fctlib.paths import project_root

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
TINY_IMAGENET_ENV = "FCT_TINY_IMAGENET_ROOT"
TINY_IMAGENET_DEFAULT_ROOT = Path("..") / "shared" / "data" / "tiny-imagenet-100"
NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm"}
STATS_SAMPLE = 1000  # images sampled for mean/std when a set is decoded lazily from files


@dataclass
class DataBundle:
    """A loaded data set: train and test image sets plus what models and transforms need."""

    train: ImageSet
    test: ImageSet
    num_classes: int
    class_names: list[str]
    channels: int
    image_size: int  # side of the square images the transforms should produce
    mean: tuple  # per-channel pixel mean of the train split, in [0, 1] units
    std: tuple  # per-channel pixel std of the train split, in [0, 1] units
    source: str  # human-readable description of where the data came from


def dataset_cache_dir(spec: DatasetSpec) -> Path:
    """The folder of a data set's extracted and decoded files (relative: under the project)."""
    path = Path(spec.cache_dir).expanduser()
    return path if path.is_absolute() else project_root() / path


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format, optionally .gz) of unsigned bytes into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: header says shape {dims} but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist(spec: DatasetSpec):
    cache = dataset_cache_dir(spec)
    folders = []
    if spec.root is not None:
        if not Path(spec.root).is_dir():
            raise FileNotFoundError(
                f"Fashion-MNIST root {spec.root} (data.dataset.root) is not a folder; set it to "
                "the folder holding the idx files, or to null to use the system copy (make data)")
        folders += [Path(spec.root), Path(spec.root) / "FashionMNIST" / "raw"]
    folders += [FASHION_MNIST_SYSTEM_DIR, cache / "FashionMNIST" / "raw"]
    stems = [stem for pair in FASHION_MNIST_FILES.values() for stem in pair]

    def complete(folder: Path) -> bool:
        return all(_find_idx(folder, stem) for stem in stems)

    found = next((folder for folder in folders if complete(folder)), None)
    download_note = "download=False"
    if found is None and spec.download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cache), train=True, download=True)
            downloaded = cache / "FashionMNIST" / "raw"
            found = downloaded if complete(downloaded) else None
            download_note = "torchvision download finished without the files"
        except Exception as err:  # no network, blocked mirror, ...: report it, never hide it
            download_note = f"torchvision download failed: {err}"
    if found is None:
        places = "\n".join(f"  - {folder}" for folder in folders)
        raise FileNotFoundError(
            "Fashion-MNIST not found: no folder holds all of "
            f"{', '.join(s + '[.gz]' for s in stems)}.\nLooked in:\n{places}\n({download_note})\n"
            "Get it with one of:\n  apt-get install -y dataset-fashion-mnist   (as root)\n"
            "  make data\n  DatasetSpec(name='fashion-mnist', root=<folder with the idx files>)"
        )
    splits = []
    for split, (images_stem, labels_stem) in FASHION_MNIST_FILES.items():
        images = read_idx(_find_idx(found, images_stem))
        labels = read_idx(_find_idx(found, labels_stem))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"Fashion-MNIST {split} files in {found} have shapes {images.shape} and "
                f"{labels.shape}; expected (N, 28, 28) images and (N,) labels"
            )
        splits.append(ArrayImages(images, labels, layout="NHW"))
    return splits[0], splits[1], list(FASHION_MNIST_CLASSES), f"Fashion-MNIST idx files in {found}"


def _load_cifar_pickle(path: Path) -> dict:
    """A CIFAR python-format pickle with its keys (and name lists) decoded to str."""
    with open(path, "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    if not isinstance(raw, dict):
        raise DataError(f"{path} is not a CIFAR pickle (a dict), got {type(raw).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _cifar_split(path: Path) -> ArrayImages:
    batch = _load_cifar_pickle(path)
    missing = {"data", "fine_labels"} - set(batch)
    if missing:
        raise DataError(f"{path} lacks {sorted(missing)}; expected b'data' and b'fine_labels'")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
    return ArrayImages(data.reshape(-1, 3, 32, 32), batch["fine_labels"], layout="NCHW")


def _load_cifar100(spec: DatasetSpec):
    base = Path(spec.root) if spec.root is not None else dataset_cache_dir(spec)
    candidates = [base / "cifar-100-python", base]
    names = ("train", "test", "meta")

    def find():
        return next((c for c in candidates if all((c / n).is_file() for n in names)), None)

    folder = find()
    download_note = "download=False"
    if folder is None and spec.download:
        try:
            from torchvision.datasets import CIFAR100

            CIFAR100(str(base), train=True, download=True)
            folder = find()
            download_note = "torchvision download finished without the files"
        except Exception as err:  # no network here: report why
            download_note = f"torchvision download failed: {err}"
    if folder is None:
        places = "\n".join(f"  - {c}" for c in candidates)
        raise FileNotFoundError(
            "CIFAR-100 (python version: train, test, meta pickles) not found. "
            f"Looked in:\n{places}\n"
            f"({download_note})\nDownload cifar-100-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into a folder, then pass "
            "DatasetSpec(name='cifar100', root=<that folder>)"
        )
    meta = _load_cifar_pickle(folder / "meta")
    if "fine_label_names" not in meta:
        raise DataError(f"{folder / 'meta'} lacks the key b'fine_label_names'")
    names_list = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"]]
    train, test = _cifar_split(folder / "train"), _cifar_split(folder / "test")
    return train, test, names_list, f"CIFAR-100 python pickles in {folder}"


def tiny_imagenet_archives(spec: DatasetSpec) -> Path:
    """The folder holding Tiny-ImageNet-100's archives: spec.root, else $FCT_TINY_IMAGENET_ROOT,
    else ../shared/data/tiny-imagenet-100 next to the project root."""
    if spec.root is not None:
        how, folder = "DatasetSpec.root", Path(spec.root)
    elif os.environ.get(TINY_IMAGENET_ENV):
        how, folder = f"${TINY_IMAGENET_ENV}", Path(os.environ[TINY_IMAGENET_ENV])
    else:
        how, folder = "default", (project_root() / TINY_IMAGENET_DEFAULT_ROOT).resolve()
    if (folder / "SHA256SUMS").is_file():
        return folder
    raise FileNotFoundError(
        "Tiny-ImageNet-100 archives (train-part1.tar.gz, train-part2.tar.gz, val.tar.gz and "
        f"SHA256SUMS) not found. Looked in:\n  - {folder} ({how})\nPass DatasetSpec(root=<folder>) "
        f"or set {TINY_IMAGENET_ENV}=<folder> to the folder that holds them."
    )


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the extracted data set")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _load_tiny_imagenet(spec: DatasetSpec):
    source = tiny_imagenet_archives(spec)
    extracted = extract_verified(source, dataset_cache_dir(spec) / "tiny-imagenet-100")
    data = extracted / "tiny-imagenet-100"
    wnids = _read_lines(data / "wnids.txt")
    words = dict(line.split("\t", 1) for line in _read_lines(data / "words.txt") if "\t" in line)
    size = spec.image_size or 64
    channels = spec.channels or 3
    splits = []
    for split in ("train", "val"):
        files = _image_folder_tree(data / split, wnids, channels)
        cache = extracted / "decoded" / f"{split}-{size}px-{channels}ch.npy"
        splits.append(files.to_arrays(size, cache))
    names = [words.get(wnid, wnid) for wnid in wnids]
    return splits[0], splits[1], names, f"Tiny-ImageNet-100 archives in {source}, {size}px"


def _class_folders(folder: Path) -> list[str]:
    """Names of the non-hidden sub-folders of `folder`, sorted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} not found")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = sorted(
            e.name for e in entries
            if e.is_file() and not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        )
    return [folder / name for name in names]


def _image_folder_tree(folder: Path, classes: list[str], channels: int = 3) -> FileImages:
    """FileImages over `folder/<class>/<image>`, labels = position of the class in `classes`."""
    unknown = sorted(set(_class_folders(folder)) - set(classes))
    if unknown:
        raise DataError(
            f"{folder} has class folders {unknown[:5]} that the class list (from the training "
            "folders / wnids.txt) lacks; every class needs training images"
        )
    paths, labels = [], []
    for label, name in enumerate(classes):
        if (folder / name).is_dir():
            files = _image_files(folder / name)
            paths += files
            labels += [label] * len(files)
    return FileImages(paths, np.asarray(labels, dtype=np.int64), channels)


def _load_imagefolder(spec: DatasetSpec):
    root = Path(spec.root)
    if spec.test_folder is not None:
        test_name = spec.test_folder
    else:
        present = [name for name in ("test", "val") if (root / name).is_dir()]
        if len(present) == 2:
            raise DataError(f"{root} has both test/ and val/; choose one with test_folder=")
        test_name = present[0] if present else "test"
    for name in ("train", test_name):
        if not (root / name).is_dir():
            raise FileNotFoundError(
                f"{root / name} not found; imagefolder expects {root}/train/<class>/<image> and "
                f"{root}/test/<class>/<image> (or val/ instead of test/)"
            )
    classes = _class_folders(root / "train")
    channels = spec.channels or 3
    train = _image_folder_tree(root / "train", classes, channels)
    empty = [name for name in classes if not _image_files(root / "train" / name)]
    if empty or not classes:
        raise DataError(f"{root / 'train'} has no class folders or empty ones: {empty[:5]}")
    test = _image_folder_tree(root / test_name, classes, channels)
    return train, test, classes, f"image folders {root}/train and {root}/{test_name}"


def _load_folder_split(spec: DatasetSpec):
    root = Path(spec.root)
    classes = _class_folders(root)
    everything = _image_folder_tree(root, classes, spec.channels or 3)
    empty = [name for name in classes if not _image_files(root / name)]
    if empty or not classes:
        raise DataError(f"{root} has no class folders or empty ones: {empty[:5]}")
    train, test = carve_tune(everything, spec.test_fraction, spec.seed)
    source = (f"class folders in {root}, {spec.test_fraction:g} of each class as test "
              f"(seed {spec.seed})")
    return train, test, classes, source


def _load_mnist(spec: DatasetSpec):
    places = [] if spec.root is None else [Path(spec.root)]
    return mnist_digits.load(places, dataset_cache_dir(spec) / "mnist", spec.download,
                             spec.test_fraction, spec.seed)


def _load_npz(spec: DatasetSpec):
    path = Path(spec.root)
    if not path.is_file():
        raise FileNotFoundError(f"npz file {path} not found")
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError(
                f"{path} lacks arrays {missing}; expected {list(NPZ_KEYS)} (images uint8 NHW, NHWC "
                f"or NCHW; labels int (N,)), found {archive.files}"
            )
        arrays = {key: archive[key] for key in archive.files}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        try:
            splits.append(ArrayImages(images, labels, layout=spec.layout))
        except ValueError as err:
            raise DataError(f"{path}: {split}_images / {split}_labels: {err}") from None
    train, test = splits
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{path}: train images are {tuple(train.images.shape[1:])} (C, H, W) but test images "
            f"are {tuple(test.images.shape[1:])}; both splits need the same shape"
        )
    num_classes = int(max(train.labels.max(initial=-1), test.labels.max(initial=-1))) + 1
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else [
        str(i) for i in range(num_classes)
    ]
    return train, test, names, f"arrays in {path}"


_LOADERS: dict[str, Callable] = {
    "fashion-mnist": _load_fashion_mnist,
    "cifar100": _load_cifar100,
    "tiny-imagenet-100": _load_tiny_imagenet,
    "mnist": _load_mnist,
    "imagefolder": _load_imagefolder,
    "folder-split": _load_folder_split,
    "npz": _load_npz,
}


def convert_channels(images: ArrayImages, channels: int) -> ArrayImages:
    """Gray -> RGB by repeating the channel, RGB -> gray by ITU-R 601 luma (as PIL's "L")."""
    if images.channels == channels:
        return images
    data = images.images
    if channels == 3:
        return ArrayImages(data.expand(-1, 3, -1, -1), images.labels, layout="NCHW")
    weights = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
    luma = ((data.to(torch.int32) * weights).sum(dim=1, keepdim=True) + 500) // 1000
    return ArrayImages(luma.to(torch.uint8), images.labels, layout="NCHW")


def in_format(images: ArrayImages, channels: int, size: int) -> ArrayImages:
    """`images` with `channels` channels (convert_channels) and `size` x `size` pixels (bilinear,
    antialiased, rounded back to bytes): another data set's images in a run's format."""
    images = convert_channels(images, channels)
    if images.image_size == (size, size):
        return images
    scaled = F.interpolate(images.images.float(), size=(size, size), mode="bilinear",
                           antialias=True, align_corners=False)
    return ArrayImages(scaled.round().clamp(0, 255).to(torch.uint8), images.labels, layout="NCHW")


def load_dataset(spec: DatasetSpec) -> DataBundle:
    """Load a data set: fashion-mnist, mnist, tiny-imagenet-100, cifar100 (in memory), imagefolder,
    folder-split (files, decoded lazily) or npz; mean/std are measured on the train split."""
    train, test, class_names, source = _LOADERS[spec.name](spec)
    if isinstance(train, ArrayImages) and spec.channels is not None:
        train, test = convert_channels(train, spec.channels), convert_channels(test, spec.channels)
    num_classes = len(class_names)
    for split, images in (("train", train), ("test", test)):
        if len(images) == 0:
            raise DataError(f"{source}: the {split} split holds no images")
        if images.labels.max() >= num_classes:
            raise DataError(
                f"{source}: {split} labels reach {images.labels.max()} but there are only "
                f"{num_classes} class names"
            )
    if spec.image_size is not None:
        image_size = spec.image_size
    elif isinstance(train, ArrayImages):
        image_size = train.image_size[0]
    else:
        with Image.open(train.paths[0]) as first:
            image_size = min(first.size)
    sample = None if isinstance(train, ArrayImages) else STATS_SAMPLE
    mean, std = channel_stats(train, max_images=sample, seed=0)
    return DataBundle(train=train, test=test, num_classes=num_classes, class_names=class_names,
                      channels=train.channels, image_size=image_size, mean=mean, std=std,
                      source=source)
