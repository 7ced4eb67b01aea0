"""Set-up shared by the tests that train new models against an old one on real Fashion-MNIST:
40 training images per class, an old model trained on classes 0-4, 20 test images per class."""

from dataclasses import dataclass

import torch
from torch import nn

from fctlib.data.batches import ImageBatches
from fctlib.data.images import ImageSet
from fctlib.data.splits import remap_labels, select_classes, subsample_per_class
from fctlib.data.transforms import CropFlipTransform
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss, train

CPU = torch.device("cpu")
SPEC = ModelSpec(arch="small_cnn", width=8, embedding_dim=16)
OLD_CLASSES = list(range(5))


@dataclass
class OldModelBench:
    """Training images and their augmentation, the old model (eval mode), test images and the
    same as one normalised batch `x`."""

    images: ImageSet
    transform: CropFlipTransform
    old: nn.Module
    test: ImageSet
    x: torch.Tensor


def normalised(bundle, images: ImageSet) -> torch.Tensor:
    """`images` as one float batch with the bundle's normalisation (no augmentation)."""
    stacked = torch.stack([images.image(i) for i in range(len(images))]).float() / 255
    return (stacked - bundle.mean[0]) / bundle.std[0]


def old_model_bench(fashion_mnist, cfg: TrainConfig, label_smoothing: float = 0.1
                    ) -> OldModelBench:
    """The old model (SPEC, seed 0) trained with `cfg` on the old classes' training images."""
    images = subsample_per_class(fashion_mnist.train, 40, seed=0)
    transform = CropFlipTransform(28, 1, fashion_mnist.mean, fashion_mnist.std)
    torch.manual_seed(0)
    old = build_model(SPEC, 1, len(OLD_CLASSES))
    train(old, ImageBatches(remap_labels(select_classes(images, OLD_CLASSES), OLD_CLASSES),
                            transform), classification_loss(label_smoothing), cfg, seed=0,
          device=CPU)
    test = subsample_per_class(fashion_mnist.test, 20, seed=0)
    return OldModelBench(images, transform, old.eval(), test, normalised(fashion_mnist, test))
