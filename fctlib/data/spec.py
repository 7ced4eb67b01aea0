"""Which data set to load and from where (DatasetSpec), and how a run splits and serves it
(DataConfig): plain data, torch-free."""

from __future__ import annotations

from dataclasses import dataclass

DATASET_NAMES = ("fashion-mnist", "mnist", "tiny-imagenet-100", "cifar100", "imagefolder",
                 "folder-split", "npz")
ROOTLESS_DATASETS = ("fashion-mnist", "mnist", "tiny-imagenet-100", "cifar100")  # found by name
# How training serves images: decoded once into memory, streamed by DataLoader workers, or
# chosen by the decoded size against the machine's RAM
DATA_PATHS = ("auto", "memory", "stream")
NORMALIZATIONS = ("dataset", "imagenet")  # mean/std: the train split's, or ImageNet's


@dataclass(frozen=True)
class DatasetSpec:
    """Which data set to load and from where (see `load_dataset` for each name's sources)."""

    name: str
    root: str | None = None  # user folder/file; tiny-imagenet-100: folder holding the 3 archives
    cache_dir: str = ".cache/data"  # extracted/decoded data; relative: to the project root
    image_size: int | None = None  # None: native; files are resized to it when decoded
    download: bool = True  # allow a torchvision download where the network exists
    test_fraction: float = 0.2  # folder-split, mnist: share of each class's images used as test
    seed: int = 0  # folder-split, mnist: seed of the per-class train/test draw
    channels: int | None = None  # 1 or 3; None: files decode to RGB, arrays keep their own
    test_folder: str | None = None  # imagefolder: "test" or "val"; None: whichever exists
    layout: str | None = None  # npz: "NHW", "NHWC" or "NCHW" when the shape is ambiguous

    def __post_init__(self):
        if self.name not in DATASET_NAMES:
            raise ValueError(f"unknown data set name {self.name!r}; expected one of "
                             f"{DATASET_NAMES}")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be a positive pixel count, got {self.image_size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie strictly in (0, 1), got {self.test_fraction}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (gray), 3 (RGB) or None, got {self.channels}")
        if self.test_folder not in (None, "test", "val"):
            raise ValueError(f"test_folder must be 'test', 'val' or None, got {self.test_folder!r}")
        if self.name in ("imagefolder", "folder-split", "npz") and self.root is None:
            raise ValueError(f"data set {self.name!r} needs root= (the folder or file to read)")


@dataclass(frozen=True)
class DataConfig:
    """Which data set, how it is split (old classes, tune share) and subsampled."""

    dataset: DatasetSpec
    old_classes: list[int] | None = None  # None: the first half of the classes by label index
    tune_fraction: float = 0.1
    train_per_class: int | None = None  # None: every training image
    test_per_class: int | None = None
    crop_padding: int = 2
    flip: bool = True
    normalization: str = "dataset"  # mean/std: the train split's, or ImageNet's (RGB only)
    path: str = "auto"  # images served from memory, streamed from disk, or auto (by RAM)

    def __post_init__(self):
        if not 0 < self.tune_fraction < 1:
            raise ValueError(f"tune_fraction must be in (0, 1), got {self.tune_fraction}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if self.path not in DATA_PATHS:
            raise ValueError(f"path must be one of {DATA_PATHS}, got {self.path!r}")
