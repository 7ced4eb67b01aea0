"""OCA (Ricci et al., 2024): backward-compatible aligned representations through an orthogonal
transformation layer, as the authors' code builds it (z3n0e/OCA @af89d7d):

- the new backbone embeds, without a final ReLU (`last_nonlin: False`), into the old size plus 32
  extra dimensions; its embedding f is L2-normalised (`norm_feature: True`) and passed through an
  orthogonal layer *with bias* (`orthogonal(nn.Linear(160, 160))`) to a bias-free classifier
  (`models/resnet.py` ResNet_OCA);
- the compatible slice is the first old-size coordinates of the normalised f, *re-normalised*
  (`trainers/OCA_trainer.py`: `F.normalize(bct_feature)`); retrieval against the old gallery
  uses it, and the whole normalised f is the new model's own embedding (`utils/eval_utils.py`
  takes output 3 and compares the common leading dimensions under cosine);
- the prototypes are the class means of the old model's L2-normalised features, every class
  (`train_OCA.py`, with the old model's `norm_feature: True`);
- loss = 5 CE(classifier) + 10 CE(slice @ prototypes^T) + 5 (1 - cos(slice, prototype of its
  class)), both cross-entropies with label smoothing 0.1 (`OCA_trainer.py`; `label_smoothing:
  0.1` in `configs/train/cifar100_OCA.yaml`);
- cosine is its protocol (`distance_metric: cosine` in its evaluation configs);
- its old model is its own, trained as `configs/train/cifar100_independent_old.yaml` trains it:
  no final ReLU, the embedding L2-normalised into its classifier (`norm_feature: True`), label
  smoothing 0.1 (`oca-old`); OCA's compatibility is measured against it (`oca/oca-old`) and
  against the suite's shared old model's own retrieval;
- both train with its recipe (`methods.oca.training`: Adam 1e-3, weight decay 2^-15, batch 64,
  cosine with 5 of 100 epochs of warm-up), the old one at the old model's epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

from fctlib.data.splits import remap_labels, select_classes
from fctlib.experiment.config import method_section
from fctlib.experiment.store import Artifact
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import UnitEmbedding, build_backbone, build_model
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext


@method_section("oca")
@dataclass(frozen=True)
class OCAConfig:
    """OCA: its recipe (its new model's; its old model's at the old model's epochs) and the extra
    dimensions of the new embedding beyond the old size."""

    training: TrainConfig
    extra_dims: int = 32

    def __post_init__(self):
        if self.extra_dims < 0:
            raise ValueError(f"extra_dims must be >= 0, got {self.extra_dims}")

EXTRA_DIMS = 32  # published: the new embedding is 32 dimensions wider than the old one
CROSS_ENTROPY_WEIGHT, INFLUENCE_WEIGHT, PULL_WEIGHT = 5.0, 10.0, 5.0  # published weights
LABEL_SMOOTHING = 0.1  # published, on both cross-entropies


class OCAHead(nn.Module):
    """normalise -> orthogonal layer (with bias) -> bias-free classifier; forward returns
    (f, logits), f the normalised embedding whose first `old_dim` coordinates, re-normalised,
    are the backward-compatible slice."""

    def __init__(self, old_dim: int, num_classes: int, extra_dims: int = EXTRA_DIMS):
        super().__init__()
        if old_dim < 1 or extra_dims < 0:
            raise ValueError(f"need old_dim >= 1 and extra_dims >= 0, got {old_dim}, {extra_dims}")
        self.old_dim, self.dim = old_dim, old_dim + extra_dims
        self.orthogonal = orthogonal(nn.Linear(self.dim, self.dim))
        self.classifier = nn.Linear(self.dim, num_classes, bias=False)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = F.normalize(feature, dim=1)
        return f, self.classifier(self.orthogonal(f))

    def compatible_slice(self, f: torch.Tensor) -> torch.Tensor:
        """The coordinates searched against the old gallery, re-normalised."""
        return compatible_slice(f, self.old_dim)


class OCAModel(nn.Module):
    """A backbone (embedding of the old size + extra dimensions) under an OCAHead; forward returns
    (f, logits), so the suite's training loop and embedding extraction take it as it is."""

    def __init__(self, backbone: nn.Module, head: OCAHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


def compatible_slice(f: torch.Tensor, old_dim: int) -> torch.Tensor:
    """The first `old_dim` coordinates of `f`, L2-normalised."""
    return F.normalize(torch.as_tensor(f)[:, :old_dim].float(), dim=1)


def class_prototypes(embeddings: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, d) mean of each class's L2-normalised embeddings (not re-normalised: norm
    <= 1); every class needs a sample."""
    embeddings = F.normalize(torch.as_tensor(embeddings).float(), dim=1)
    labels = torch.as_tensor(labels).long()
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no samples to build their prototype from")
    sums = torch.zeros(num_classes, embeddings.shape[1]).index_add_(0, labels, embeddings)
    return sums / torch.bincount(labels, minlength=num_classes)[:, None]


def prototype_pull(compatible: torch.Tensor, labels: torch.Tensor,
                   prototypes: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(slice, its class's old prototype)."""
    return (1 - F.cosine_similarity(compatible.float(), prototypes[labels], dim=1)).mean()


def oca_loss(f: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, old_dim: int,
             prototypes: torch.Tensor, label_smoothing: float = LABEL_SMOOTHING) -> torch.Tensor:
    """5 x cross-entropy of the classifier + 10 x cross-entropy of the re-normalised old-size
    slice of `f` through the old class prototypes + 5 x the cosine pull towards them, both
    cross-entropies label-smoothed."""
    compatible = compatible_slice(f, old_dim)
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    influence = F.cross_entropy(compatible @ prototypes.T, labels,
                                label_smoothing=label_smoothing)
    return (CROSS_ENTROPY_WEIGHT * ce + INFLUENCE_WEIGHT * influence
            + PULL_WEIGHT * prototype_pull(compatible, labels, prototypes))


def oca_training_step(prototypes: torch.Tensor, old_dim: int,
                      label_smoothing: float = LABEL_SMOOTHING):
    """Loss step of OCA training (oca_loss) against the old model's class prototypes, which cover
    every class (the old model embeds the new classes' images too)."""
    on_device: dict[torch.device, torch.Tensor] = {}

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        f, logits = model(images)
        if labels.device not in on_device:
            on_device[labels.device] = prototypes.to(labels.device)
        return oca_loss(f, logits, labels, old_dim, on_device[labels.device], label_smoothing)

    return step


def prototype_diagnostics(old_train: np.ndarray, train_labels: np.ndarray,
                          old_test: np.ndarray, test_labels: np.ndarray,
                          aligned_test: np.ndarray, old_class: np.ndarray) -> dict[str, float]:
    """Where OCA's class-level pull lands (fractions of images). Prototypes are the class means
    of the old model's L2-normalised training features, as OCA trains against them; "nearest"
    is the largest `feature @ prototypes^T`, the influence loss's logits.

    - `old_prototype_train`, `old_prototype_test`: the old model's own features nearest their
      class's prototype (how well the targets OCA pulls towards separate the classes);
    - `slice_prototype_test`, `..._old_classes`, `..._new_classes`: OCA's compatible slice of
      each test image nearest its class's prototype (what the influence loss trains), over all
      test images and those of the old and of the new classes (`old_class`: a test mask);
    - `oracle_prototype_top1`: each test query replaced by its class's normalised prototype,
      searched by cosine in the old model's test gallery: the top-1 a slice pulled exactly onto
      its prototype would reach, to read beside `oca-old/oca-old`."""
    prototypes = class_prototypes(torch.from_numpy(old_train), torch.from_numpy(train_labels),
                                  int(train_labels.max()) + 1)

    def nearest_is_own(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        unit = F.normalize(torch.from_numpy(features).float(), dim=1)
        return (unit @ prototypes.T).argmax(1).numpy() == labels

    own_slice = nearest_is_own(compatible_slice(torch.from_numpy(aligned_test),
                                                old_test.shape[1]).numpy(), test_labels)
    gallery = F.normalize(torch.from_numpy(old_test).float(), dim=1)
    nearest_item = (F.normalize(prototypes, dim=1) @ gallery.T).argmax(1).numpy()
    prototype_hits = test_labels[nearest_item] == np.arange(len(prototypes))
    return {"old_prototype_train": float(nearest_is_own(old_train, train_labels).mean()),
            "old_prototype_test": float(nearest_is_own(old_test, test_labels).mean()),
            "slice_prototype_test": float(own_slice.mean()),
            "slice_prototype_test_old_classes": float(own_slice[old_class].mean()),
            "slice_prototype_test_new_classes": float(own_slice[~old_class].mean()),
            "oracle_prototype_top1": float(prototype_hits[test_labels].mean())}


# -- in a run -------------------------------------------------------------------------------------
@artifact_kind("oca-old")
def oca_old_encoder(run: RunContext) -> Artifact:
    """OCA's own old model: the old network without its embedding ReLU, its embedding
    L2-normalised into a bias-free classifier, trained on the old classes with OCA's recipe at
    the old model's epochs (label-smoothed cross-entropy)."""
    s = run.splits
    spec = dataclasses.replace(run.preset.old.model, embedding_relu=False)
    training = dataclasses.replace(run.preset.method("oca").training,
                                   epochs=run.preset.old.training.epochs)

    def build() -> nn.Module:
        model = build_model(spec, s.bundle.channels, len(s.old_classes))
        model.backbone = UnitEmbedding(model.backbone)
        return model

    def fit(folder: Path):
        return fit_classifier(run, folder, build, select_classes(s.train, s.old_classes),
                              s.old_classes, classification_loss(training.label_smoothing),
                              training, desc="oca old")

    return Artifact("oca-old", "oca-old", (spec, training), fit)


@artifact_kind("oca")
def oca_encoder(run: RunContext) -> Artifact:
    """OCA's new model (the new network without its embedding ReLU, OCA's recipe, every class):
    an embedding `methods.oca.extra_dims` wider than the old one under the orthogonal head,
    trained with oca_loss against its old model's class prototypes (means of its L2-normalised
    embeddings of the training set, new classes included)."""
    new, s, cfg = run.preset.new, run.splits, run.preset.method("oca")
    old_dim = run.preset.old.model.embedding_dim
    spec = dataclasses.replace(new.model, embedding_dim=old_dim + cfg.extra_dims,
                               embedding_relu=False)
    old = run.artifact("oca-old")

    def fit(folder: Path):
        prototypes = class_prototypes(run.embeddings(old, "train"),
                                      remap_labels(s.train, s.all_classes).labels,
                                      len(s.all_classes))
        return fit_classifier(
            run, folder, lambda: OCAModel(build_backbone(spec, s.bundle.channels),
                                          OCAHead(old_dim, len(s.all_classes), cfg.extra_dims)),
            s.train, s.all_classes, oca_training_step(prototypes, old_dim), cfg.training,
            desc="oca")

    # recipe 3: its own old model and recipe (2: normalised prototypes, re-normalised slice taken
    # before the orthogonal layer with bias, label smoothing on the influence term, no ReLU)
    return Artifact("oca", "oca", (spec, cfg), fit, (old,), recipe=3)


@register_method("oca", order=70, criteria=(("oca/oca-old", "oca-old/oca-old"),
                                       ("oca/oca-old", "old/old")), protocol=("cosine",),
                 notation=("`oca-old`, `oca`", "OCA's old and new models"))
def oca_cases(run: RunContext) -> MethodCases:
    """OCA: the re-normalised old-size slice of the new normalised embedding searches its old
    model's gallery directly (`oca/oca-old`), which must beat that model's own retrieval
    (`oca-old/oca-old`); the whole embedding searches its own gallery (`oca/oca`). Cosine is its
    protocol; its L2 rows are outside it."""
    aligned, old = run.embeddings("oca", "test"), run.embeddings("oca-old", "test")
    query = compatible_slice(torch.from_numpy(aligned), old.shape[1]).numpy()
    return MethodCases({"oca-old/oca-old": (old, old), "oca/oca-old": (query, old),
                        "oca/oca": (aligned, aligned)}, "oca")


def oca_diagnostics(run: RunContext) -> dict[str, float]:
    """prototype_diagnostics of a run's OCA models (the test split; the training split for the
    prototypes), as notebook 09 records them."""
    s = run.splits
    return prototype_diagnostics(
        run.embeddings("oca-old", "train"), remap_labels(s.train, s.all_classes).labels,
        run.embeddings("oca-old", "test"), remap_labels(s.test, s.all_classes).labels,
        run.embeddings("oca", "test"), np.isin(s.test.labels, s.old_classes))
