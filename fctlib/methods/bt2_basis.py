"""BT² (Zhou et al. 2022): backward-compatible training with a basis transformation. The new
model's embedding gains extra dimensions; an orthonormal change of basis keeps what the
compatible part carries while the extra part holds what the old space cannot.

Built as its authors' code builds it (YifeiZhou02/BT-2 @8282360, models/resnet.py:473-620
`ResNet_ortho`, trainers/transfer_trainer.py:73-100, configs/cifar100_transfer.yaml):
- a backbone with an embedding of old + new size; `feature` = its first new-size dimensions,
  L2-normalised, into a bias-free classifier; a linear head (fc3, with bias) from the whole
  embedding (through a ReLU) to the old size, L2-normalised;
- stacked = [the head's first `extra_dims` dimensions, normalised; P(C x feature)], P orthogonal;
  output = [Q(stacked[:old size]), stacked[old size:]], Q orthogonal (both orthogonal through
  torch's parametrisation, as there), so the output holds `extra_dims` more than the new size;
- loss: CE(classifier(feature)) + 10 CE(normalised compatible part against the class means of
  the old model's normalised features, every class) + 5 (1 - cos(compatible part, phi_old(x)))
  + 1 (1 - cos(feature, phi_new(x))), phi_old and phi_new the frozen old and independent new
  models; no label smoothing (the config's 0.1 is not read by train_feature_transfer.py);
- retrieval: the compatible part (the first old-size dimensions) against the old gallery, the
  whole output against its own gallery, both under cosine (eval_utils.py:204-220 compares unit
  old features with the truncated query, a ranking cosine keeps).
Departures: phi_old and phi_new are computed on each augmented batch (the authors cache them
once per image, from one flipped view), and the recipe is BT-2's Adam recipe at the new model's
epochs, `methods.bct.bt2_training` without its label smoothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

from fctlib.data.splits import remap_labels
from fctlib.experiment.config import method_section
from fctlib.experiment.store import Artifact
from fctlib.methods.bct import matched_encoder
from fctlib.methods.bct_variants import class_means
from fctlib.methods.independent import fit_classifier, frozen
from fctlib.methods.registry import MethodCases, artifact_kind, register_method
from fctlib.models.backbones import build_backbone

if TYPE_CHECKING:
    from fctlib.experiment.context import RunContext

INFLUENCE_WEIGHT, OLD_PULL_WEIGHT, NEW_PULL_WEIGHT = 10.0, 5.0, 1.0  # lambda_2, lambda_3, lambda_1


@method_section("bt2-basis")
@dataclass(frozen=True)
class BT2BasisConfig:
    """`methods.bt2-basis` of a preset: the extra dimensions (configs/cifar100_transfer.yaml
    to_add_dim 32; at most the old embedding's size) and the scale C of the new feature before P
    (C 2)."""

    extra_dims: int = 32
    scale: float = 2.0

    def __post_init__(self):
        if self.extra_dims < 1 or self.scale <= 0:
            raise ValueError(f"extra_dims must be >= 1 and scale > 0, got {self.extra_dims}, "
                             f"{self.scale}")


class BasisTransformModel(nn.Module):
    """BT²'s network: forward returns (output, logits), `parts` also the compatible part and the
    normalised feature the classifier sees."""

    def __init__(self, backbone: nn.Module, old_dim: int, new_dim: int, num_classes: int,
                 extra_dims: int = 32, scale: float = 2.0):
        super().__init__()
        if not 0 < extra_dims <= old_dim or old_dim > new_dim + extra_dims:
            raise ValueError(f"BT² needs 0 < extra_dims ({extra_dims}) <= old size ({old_dim}) "
                             f"<= new size ({new_dim}) + extra_dims")
        self.backbone = backbone
        self.old_dim, self.new_dim = old_dim, new_dim
        self.extra_dims, self.scale = extra_dims, scale
        self.to_old = nn.Linear(old_dim + new_dim, old_dim)
        self.rotate_new = orthogonal(nn.Linear(new_dim, new_dim, bias=False))
        self.rotate_old = orthogonal(nn.Linear(old_dim, old_dim, bias=False))
        self.classifier = nn.Linear(new_dim, num_classes, bias=False)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(output, compatible part, normalised feature, logits) of a batch."""
        embedding = self.backbone(x)
        feature = F.normalize(embedding[:, :self.new_dim], dim=1)
        head = F.normalize(self.to_old(F.relu(embedding)), dim=1)
        stacked = torch.cat([F.normalize(head[:, :self.extra_dims], dim=1),
                             self.rotate_new(self.scale * feature)], dim=1)
        compatible = self.rotate_old(stacked[:, :self.old_dim])
        output = torch.cat([compatible, stacked[:, self.old_dim:]], dim=1)
        return output, compatible, feature, self.classifier(feature)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output, _, _, logits = self.parts(x)
        return output, logits


def bt2_basis_loss(compatible: torch.Tensor, feature: torch.Tensor, logits: torch.Tensor,
                   labels: torch.Tensor, rows: torch.Tensor, old: torch.Tensor,
                   new: torch.Tensor) -> torch.Tensor:
    """BT²'s loss on one batch (transfer_trainer.py:73-100): `rows` the class means of the old
    model's normalised features, `old` and `new` the frozen models' features of the batch."""
    compatible = F.normalize(compatible.float(), dim=1)
    feature = F.normalize(feature.float(), dim=1)
    influence = F.cross_entropy(compatible @ rows.T, labels)
    old_pull = 1 - F.cosine_similarity(compatible, old.float(), dim=1).mean()
    new_pull = 1 - F.cosine_similarity(feature, new.float(), dim=1).mean()
    return (F.cross_entropy(logits.float(), labels) + INFLUENCE_WEIGHT * influence
            + OLD_PULL_WEIGHT * old_pull + NEW_PULL_WEIGHT * new_pull)


def bt2_basis_step(rows: torch.Tensor, old_model: nn.Module, new_model: nn.Module) -> Callable:
    """Loss step of BT² training against the frozen old and new models (eval mode)."""
    on_device: dict[torch.device, torch.Tensor] = {}

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        if labels.device not in on_device:
            on_device[labels.device] = rows.to(labels.device)
        output, compatible, feature, logits = model.parts(images)
        with torch.no_grad():
            old, new = old_model(images)[0], new_model(images)[0]
        return bt2_basis_loss(compatible, feature, logits, labels, on_device[labels.device],
                              old, new)

    return step


@artifact_kind("bt2-basis")
def bt2_basis_encoder(run: RunContext) -> Artifact:
    """BT²'s new model: the new network with an embedding of old + new size under BT²'s head,
    trained on every class against the frozen old and independent new models, with BT-2's Adam
    recipe (`methods.bct.bt2_training`) and no label smoothing."""
    new, s, cfg = run.preset.new, run.splits, run.preset.method("bt2-basis")
    old_dim, new_dim = run.preset.old.model.embedding_dim, new.model.embedding_dim
    if not cfg.extra_dims <= old_dim <= new_dim + cfg.extra_dims:
        raise ValueError(f"methods.bt2-basis.extra_dims ({cfg.extra_dims}) must be at most the old "
                         f"embedding size ({old_dim}) and, with the new size ({new_dim}), reach "
                         "it; set it in the preset (published: 32 of 128)")
    spec = dataclasses.replace(new.model, embedding_dim=old_dim + new_dim)
    training = dataclasses.replace(run.preset.method("bct").bt2_training, label_smoothing=0.0)
    old, independent = run.artifact("old"), run.artifact("new")

    def fit(folder: Path):
        labels = torch.as_tensor(remap_labels(s.train, s.all_classes).labels)
        rows = class_means(torch.as_tensor(run.embeddings(old, "train")), labels,
                           list(range(len(s.all_classes))), old_dim, normalize=True)
        step = bt2_basis_step(rows, frozen(run.trained(old)[0], run.device),
                              frozen(run.trained(independent)[0], run.device))
        return fit_classifier(
            run, folder, lambda: BasisTransformModel(build_backbone(spec, s.bundle.channels),
                                                     old_dim, new_dim, len(s.all_classes),
                                                     cfg.extra_dims, cfg.scale),
            s.train, s.all_classes, step, training, desc="bt2 basis")

    return Artifact("bt2-basis", "bt2-basis", (spec, training, cfg), fit,
                    upstream=(old, independent))


@register_method("bt2-basis", order=28, criteria=(("bt2b/old", "old/old"),),
                 protocol=("cosine",), notation=(
                     "`bt2b`, `bt2-new`", "BT²: a new model whose embedding has extra dimensions "
                                          "(32 published), an orthonormal basis transformation "
                                          "keeping its first old-size dimensions compatible with "
                                          "the old model; BT-2's own new model (its Adam recipe "
                                          "and normalised feature, no compatibility loss)"))
def bt2_basis_cases(run: RunContext) -> MethodCases:
    """BT²: the compatible part (first old-size dimensions) searches the old gallery
    (`bt2b/old`); the whole output its own (`bt2b/bt2b`), beside BT-2's own new model trained
    with the same recipe without compatibility (`bt2-new/bt2-new`, the bt2 variant's matched
    model), the new model of its authors' comparison; cosine is their protocol."""
    output, old = run.embeddings("bt2-basis", "test"), run.embeddings("old", "test")
    matched = run.embeddings(matched_encoder(run.preset, "bt2"), "test")
    return MethodCases({"bt2b/old": (output[:, :old.shape[1]], old),
                        "bt2b/bt2b": (output, output),
                        "bt2-new/bt2-new": (matched, matched)}, "bt2-basis")
