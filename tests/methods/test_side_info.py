import numpy as np
import pytest
import torch

from fctlib.data.images import ImageSet
from fctlib.data.splits import subsample_per_class
from fctlib.data.transforms import SimCLRTransform
from fctlib.methods.side_info import nt_xent, side_info_training_images, train_side_info_model
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig

CPU = torch.device("cpu")


class SpyImages(ImageSet):
    """An image set that logs which original rows are decoded and can forbid reading labels."""

    def __init__(self, inner: ImageSet, rows=None, log=None):
        self.inner, self.channels = inner, inner.channels
        self.rows = np.arange(len(inner.labels)) if rows is None else rows
        self.log = log if log is not None else {"read": set(), "labels_locked": False}

    def __len__(self):
        return len(self.rows)

    @property
    def labels(self):
        if self.log["labels_locked"]:
            raise AssertionError("side-info training read the labels")
        return self.inner.labels[self.rows]

    def image(self, i):
        self.log["read"].add(int(self.rows[i]))
        return self.inner.image(int(self.rows[i]))

    def subset(self, indices):
        return SpyImages(self.inner, self.rows[np.asarray(indices)], self.log)

    def with_labels(self, labels):
        raise AssertionError("not used")

    def digest(self):
        raise AssertionError("not used")


def test_nt_xent_hand_values():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # identical views: each view's partner has cosine 1, the two others cosine 0 and 0
    expected = -np.log(np.e ** 2 / (np.e ** 2 + 2 * np.e ** 0))
    assert nt_xent(z, z.clone(), temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    swapped = nt_xent(z, z.flip(0), temperature=0.5).item()
    assert swapped > nt_xent(z, z, temperature=0.5).item()
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, z[:1], 0.5)


def test_side_info_reads_only_old_class_images_and_no_labels(fashion_mnist):
    fashion = fashion_mnist
    images = subsample_per_class(fashion.train, 24, seed=0)
    spy = SpyImages(images)
    old_classes = [0, 1, 2, 3, 4]
    selected = side_info_training_images(spy, old_classes)
    spy.log["labels_locked"] = True
    cfg = TrainConfig(epochs=3, batch_size=40, optimizer="adam", lr=2e-3, weight_decay=0)
    backbone, history = train_side_info_model(
        selected, ModelSpec(arch="small_cnn", width=8, embedding_dim=8),
        SimCLRTransform(28, 1, fashion.mean, fashion.std), cfg, seed=0, device=CPU,
    )
    read = np.array(sorted(spy.log["read"]))
    spy.log["labels_locked"] = False
    read_labels = images.labels[read]
    old_rows = np.flatnonzero(np.isin(images.labels, old_classes))
    assert set(read_labels.tolist()) <= set(old_classes)
    assert set(read.tolist()) == set(old_rows.tolist())  # every old image was used
    assert history[-1]["loss"] < history[0]["loss"]
    out = backbone(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 8)


def test_other_data_side_info_learns_from_the_other_set_in_this_runs_format(smoke_run,
                                                                            monkeypatch):
    """`other-data`: the other set's images converted to the run's channels and size, at most as
    many as the default side-info sees, drawn by the seed; its SimCLR model trains on them."""
    from fctlib.data import sources
    from fctlib.data.images import ArrayImages
    from fctlib.methods import side_info
    from fctlib.methods.side_info import SideInfoName

    rgb = torch.arange(3 * 56 * 56 * 4000, dtype=torch.int64).remainder(256).to(torch.uint8)
    other = ArrayImages(rgb.view(4000, 3, 56, 56), np.arange(4000) % 7, layout="NCHW")
    fake = sources.DataBundle(other, other, 7, list("abcdefg"), 3, 56, (0.5,) * 3, (0.2,) * 3,
                              "a test set")
    asked = []
    monkeypatch.setattr(side_info, "load_dataset", lambda spec: asked.append(spec) or fake)
    images = side_info.other_data_images(smoke_run)
    budget = len(side_info_training_images(smoke_run.splits.train, smoke_run.splits.old_classes))
    assert asked[0].name == smoke_run.preset.other_data
    assert len(images) == min(budget, 4000) and images.channels == 1
    assert images.image_size == (28, 28)
    assert torch.equal(side_info.other_data_images(smoke_run).images, images.images)  # seeded
    model, history = smoke_run.trained(SideInfoName(4, "other-data"))
    assert history and all(np.isfinite(h["loss"]) for h in history)
    assert smoke_run.embeddings(SideInfoName(4, "other-data"), "test").shape[1] == 4
