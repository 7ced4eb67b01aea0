"""The paper-scale presets: the reference recipe, and their pipeline on small stand-in data."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from fctlib.data.batches import decode_all
from fctlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fctlib.experiment.config import PresetError, load_preset
from fctlib.models.backbones import build_backbone, build_model
from fctlib.suite.run import Run

WEIGHT_DECAY = 2.0**-15  # 3.0517578125e-5, the reference's weight decay


@pytest.mark.parametrize("name", ["cifar100", "imagenet"])
def test_reference_recipe(name):
    preset = load_preset(name)
    assert preset.data.normalization == "imagenet" and preset.data.dataset.image_size == 224
    assert preset.data.old_classes is None  # the first half: 0-49 of 100, 0-499 of 1000
    for stage in (preset.old, preset.new, preset.side_info):
        assert (stage.model.arch, stage.model.embedding_dim) == ("resnet50", 128)
        assert not stage.model.small_input_stem and stage.model.embedding_relu
    for t in (preset.old.training, preset.new.training):
        assert (t.optimizer, t.lr, t.batch_size, t.momentum, t.nesterov) == (
            "sgd", 1.024, 1024, 0.875, False)
        assert (t.weight_decay, t.epochs, t.warmup_epochs, t.label_smoothing) == (
            WEIGHT_DECAY, 100, 5, 0.1)
    h = preset.transformation
    assert (h.branch_widths, h.mixer_widths) == ([256, 256], [2048, 2048])
    assert (h.training.optimizer, h.training.lr, h.training.epochs, h.training.warmup_epochs) == (
        "adam", 5e-4, 80, 5)
    assert h.training.weight_decay == WEIGHT_DECAY and h.training.batch_size == 1024


def test_cifar100_augments_with_resize_and_flip_only():
    assert load_preset("cifar100").data.crop_padding == 0


def test_normalization_must_be_known(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\ndata: {normalization: cifar}\n")
    with pytest.raises(PresetError, match="normalization must be one of"):
        load_preset(path)
    assert load_preset("smoke").data.normalization == "dataset"


def write_cifar(root, labels, test_labels):
    """cifar-100-python pickles (torchvision's format); image 0 of train is a constant colour."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, split_labels in (("train", labels), ("test", test_labels)):
        data = rng.integers(0, 256, (len(split_labels), 3, 32, 32), dtype=np.uint8)
        if split == "train":
            data[0] = np.array(CONSTANT, np.uint8)[:, None, None]
        batch = {b"data": data.reshape(len(split_labels), -1), b"fine_labels": split_labels,
                 b"coarse_labels": [0] * len(split_labels)}
        (folder / split).write_bytes(pickle.dumps(batch))
    names = {b"fine_label_names": [f"class{i}".encode() for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(names))


def write_image_folder(root, classes, per_class):
    """train/<class>/ and val/<class>/ JPEG trees with odd sizes; the first train image is a
    constant colour (PNG, so that it decodes exactly)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (37 + i, 45, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{c}_{i}.JPEG", format="JPEG")
    constant = np.broadcast_to(np.array(CONSTANT, np.uint8), (30, 40, 3))
    Image.fromarray(np.ascontiguousarray(constant)).save(root / "train" / classes[0] / "0.png")


CONSTANT = (10, 128, 250)  # RGB of the constant image: its normalised value is known exactly
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]


def stand_in(name, tmp_path):
    """(overrides, number of classes, old classes, training images) pointing a paper preset at
    small files."""
    if name == "cifar100":
        # every class needs training images (the loader refuses a class without any)
        labels = [c for c in (0, 1, 50, 51) for _ in range(10)]
        labels += [c for c in range(100) if c not in (0, 1, 50, 51) for _ in range(2)]
        write_cifar(tmp_path, labels, [0, 1, 50, 51])
        dataset = {"root": str(tmp_path), "download": False}
        return {"data": {"dataset": dataset}}, 100, list(range(50)), len(labels)
    write_image_folder(tmp_path, WNIDS, per_class=10)
    dataset = {"root": str(tmp_path), "cache_dir": str(tmp_path / "cache")}
    return {"data": {"dataset": dataset}}, len(WNIDS), [0, 1], 41


@pytest.mark.parametrize("name", ["cifar100", "imagenet"])
def test_pipeline_on_stand_in_data(name, tmp_path):
    overrides, num_classes, old_classes, images = stand_in(name, tmp_path / "data")
    run = Run(name, 0, overrides=overrides, runs_dir=tmp_path / "runs",
              results_dir=tmp_path / "results", device=torch.device("cpu"))
    splits = run.splits
    assert splits.bundle.num_classes == num_classes and splits.old_classes == old_classes
    assert len(splits.train) + len(splits.tune) == images and splits.bundle.image_size == 224

    decoded = decode_all(splits.train, 224)
    augmented = run.train_transform()(decoded, torch.Generator().manual_seed(0))
    batch = augmented[:2]
    assert batch.shape == (2, 3, 224, 224)
    # a constant image stays constant through resize, crop and flip: its value is
    # (colour / 255 - ImageNet mean) / ImageNet std in each channel
    constant = [i for i in range(len(splits.train))
                if splits.train.image(i).float().std(dim=(1, 2)).max() == 0]
    expected = (torch.tensor(CONSTANT) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD)
    if name == "imagenet":  # padding of the random crop brings zeros in at the border
        image = augmented[constant[0]][:, 28:-28, 28:-28]
    else:
        image = augmented[constant[0]]
    assert image.shape[0] == 3 and len(constant) == 1
    torch.testing.assert_close(image, expected[:, None, None].expand_as(image), rtol=0, atol=1e-5)

    preset = run.preset
    old = build_model(preset.old.model, splits.bundle.channels, len(splits.old_classes))
    new = build_model(preset.new.model, splits.bundle.channels, num_classes)
    assert old.classifier.weight.shape == (len(old_classes), 128)
    assert new.classifier.weight.shape == (num_classes, 128)
    side = build_backbone(preset.side_info.model, splits.bundle.channels)
    assert side.layer4[-1].conv3.out_channels == 128
    with torch.no_grad():
        embedding, logits = old.eval()(batch)
    assert embedding.shape == (2, 128) and logits.shape == (2, len(old_classes))
    assert embedding.min() >= 0  # the reference keeps the last block's ReLU


def _npz(path, rgb):
    shape = (8, 6, 6, 3) if rgb else (8, 6, 6)
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    labels = np.arange(8) % 4
    np.savez(path, train_images=images, train_labels=labels, test_images=images,
             test_labels=labels)
    return {"name": "npz", "root": str(path), "layout": "NHWC" if rgb else "NHW"}


def test_imagenet_normalization_needs_rgb_and_gets_its_own_run_folders(tmp_path):
    def run(dataset, normalization):
        overrides = {"data": {"dataset": dataset, "normalization": normalization,
                              "tune_fraction": 0.5}}
        return Run("smoke", 0, overrides=overrides, runs_dir=tmp_path / "runs")

    gray = run(_npz(tmp_path / "gray.npz", rgb=False), "imagenet")
    with pytest.raises(ValueError, match="normalization 'imagenet' needs RGB images"):
        gray.train_transform()
    rgb = _npz(tmp_path / "rgb.npz", rgb=True)
    imagenet, own = run(rgb, "imagenet"), run(rgb, "dataset")
    assert imagenet.image_stats[2:] == (IMAGENET_MEAN, IMAGENET_STD)
    assert own.image_stats[2:] == (own.splits.bundle.mean, own.splits.bundle.std)
    assert imagenet.store.folder(imagenet.artifact("old")) != own.store.folder(own.artifact("old"))
