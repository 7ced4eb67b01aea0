"""Stationary representations from a fixed d-Simplex classifier, with the higher-order
compatibility (HOC) loss (Biondi et al., CVPR 2024), as the authors' code builds them
(miccunifi/iamcl2r @18495ac):

- one regular simplex, preallocated (`methods.dsimplex.vertices`, default: one vertex per class of
  the data set, so every class of every generation has one), is every model's frozen classifier, and
  the cross-entropy of every model (the old one too) runs over all of its vertices: vertices of
  classes a model has not seen act as negatives (`models/__init__.py` create_model:
  `num_classes = args.preallocated_classes`; `train.py` criterion_cls on all logits);
- the new model is fine-tuned from the old model's weights (`main.py`: both `previous_net` and
  `net` are created with `resume_path` = the previous task's checkpoint), so both generations use
  the old model's network;
- the new model's loss is 0.1 cross-entropy + 0.9 HOC (`train.py`, `lambda_` 0.1), HOC with
  mu = 10 (`methods/hoc.py`): anchored on the old feature of each image, its positive is the new
  feature of the same image, and every same-class entry (the positive included) is zeroed in the
  log-sum-exp, so the pull on the positive never saturates;
- the cross-entropy has no label smoothing (`main.py`: `nn.CrossEntropyLoss()`);
- features are L2-normalised for retrieval (`models/__init__.py` extract_features): cosine is
  the method's protocol.

The old model trains with the suite's old recipe. A fine-tuned generation trains as iamcl2r
fine-tunes (`params.py`, `main.py`): SGD at lr `methods.dsimplex.finetune_lr` (published 1e-3,
momentum 0.9) on a cosine schedule without warm-up, with the new recipe's epochs, batch and weight
decay (published: 70 epochs per task, batch 128, 5e-4). Departures: the cosine ends at 0, not at
1e-5 (at most 1e-5 of learning rate apart); weight decay also on gains and biases; no rehearsal
memory (every class is trained on).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from fctlib.data.splits import select_classes
from fctlib.experiment.config import method_section
from fctlib.experiment.names import ArtifactName
from fctlib.experiment.store import Artifact
from fctlib.methods.independent import fit_classifier
from fctlib.methods.registry import (
    MethodCases,
    artifact_kind,
    multistep_chain,
    register_method,
)
from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.config import TrainConfig
from fctlib.training.loop import classification_loss
from fctlib.training.runtime import prepare_model

if TYPE_CHECKING:
    from fctlib.experiment.context import Generations, RunContext


@method_section("dsimplex")
@dataclass(frozen=True)
class DSimplexConfig:
    """d-Simplex: the preallocated simplex's number of vertices (every model's classifier, all of
    them in its cross-entropy; None: one per class of the data set) and the learning rate a
    generation is fine-tuned at (iamcl2r `params.py`: 1e-3)."""

    vertices: int | None = None
    finetune_lr: float = 0.001

    def __post_init__(self):
        if self.vertices is not None and self.vertices < 2:
            raise ValueError(f"vertices must be >= 2 or null, got {self.vertices}")
        if self.finetune_lr <= 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")


def finetune_recipe(run: RunContext, training: TrainConfig) -> TrainConfig:
    """`training` as iamcl2r fine-tunes a generation: SGD at `finetune_lr`, cosine, no warm-up."""
    return dataclasses.replace(training, optimizer="sgd", momentum=0.9, nesterov=False,
                               lr=run.preset.method("dsimplex").finetune_lr, warmup_epochs=0)

CROSS_ENTROPY_WEIGHT, HOC_WEIGHT, HOC_SCALE = 0.1, 0.9, 10.0  # the published setting
LABEL_SMOOTHING = 0.0  # published: a plain nn.CrossEntropyLoss()


def simplex_spec(spec):
    """The network of a d-Simplex model: `spec` without the ReLU on its embedding. The simplex's
    vertices have negative coordinates, which a non-negative (ReLU) feature cannot point at."""
    return dataclasses.replace(spec, embedding_relu=False)


def simplex_vertices(num_classes: int, dim: int) -> torch.Tensor:
    """(num_classes, dim) unit vectors, the vertices of a regular simplex centred at the origin:
    every pair has cosine -1 / (num_classes - 1). Needs dim >= num_classes - 1."""
    if num_classes < 2 or dim < num_classes - 1:
        raise ValueError(f"a {num_classes}-class simplex needs >= 2 classes and an embedding of "
                         f">= {num_classes - 1} dimensions, got {dim}")
    centred = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    # An orthonormal basis of the (num_classes - 1)-dimensional span of the centred vertices.
    basis, _, _ = torch.linalg.svd(centred.T, full_matrices=False)
    coords = centred @ basis[:, : num_classes - 1]
    coords = coords / coords.norm(dim=1, keepdim=True)
    vertices = torch.zeros(num_classes, dim, dtype=torch.float64)
    vertices[:, : num_classes - 1] = coords
    return vertices.float()


class SimplexClassifier(nn.Module):
    """A bias-free linear classifier frozen to the vertices of a regular simplex of
    `num_vertices` vertices: features learn to point at their class's vertex, and every vertex
    (those of classes not seen yet too) enters the softmax."""

    def __init__(self, dim: int, num_vertices: int):
        super().__init__()
        self.register_buffer("weight", simplex_vertices(num_vertices, dim))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return feature @ self.weight.T


def hoc_loss(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor,
             scale: float = HOC_SCALE) -> torch.Tensor:
    """HOC on L2-normalised features, as iamcl2r's `HocLoss`: for each image i, anchored on its
    old feature o_i, -mu cos(o_i, n_i) + log sum_j exp(mu cos(o_i, n_j) [y_j != y_i]), averaged;
    the positive is not in the log-sum-exp as such: every same-class entry (j = i included)
    enters it as exp(0)."""
    new, old = F.normalize(new.float(), dim=1), F.normalize(old.float(), dim=1)
    similarity = scale * old @ new.T  # row i: the anchor o_i against every new feature n_j
    same_class = labels[:, None] == labels[None, :]
    negatives = similarity.masked_fill(same_class, 0.0)
    return (torch.logsumexp(negatives, dim=1) - similarity.diagonal()).mean()


def dsimplex_loss(logits: torch.Tensor, new: torch.Tensor, old: torch.Tensor,
                  labels: torch.Tensor, label_smoothing: float = LABEL_SMOOTHING
                  ) -> torch.Tensor:
    """0.1 x cross-entropy on the simplex classifier's logits (every vertex) + 0.9 x HOC against
    the old model's features (the published weights)."""
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return CROSS_ENTROPY_WEIGHT * ce + HOC_WEIGHT * hoc_loss(new, old, labels)


def dsimplex_training_step(old_model: nn.Module, label_smoothing: float = LABEL_SMOOTHING):
    """Loss step of the new d-Simplex model: dsimplex_loss against the frozen old d-Simplex
    model's features of the same (augmented) images."""
    old_model = old_model.eval().requires_grad_(False)

    def step(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        feature, logits = model(images)
        with torch.no_grad():
            old_feature, _ = old_model.to(images.device)(images)
        return dsimplex_loss(logits, feature, old_feature, labels, label_smoothing)

    return step


# -- in a run -------------------------------------------------------------------------------------
def simplex_model(spec: ModelSpec, in_channels: int, num_vertices: int,
                  init: nn.Module | None = None) -> nn.Module:
    """The network of `spec` without its embedding ReLU, its classifier frozen to a simplex of
    `num_vertices` vertices (all of them in the softmax); with `init`, it starts from that
    model's weights (the previous generation's: the new model is fine-tuned from it)."""
    spec = simplex_spec(spec)
    model = build_model(spec, in_channels, num_vertices)
    model.classifier = SimplexClassifier(spec.embedding_dim, num_vertices)
    if init is not None:
        model.load_state_dict(init.state_dict())
    return model


def simplex_size(run: RunContext) -> int:
    """The preallocated simplex's number of vertices: `methods.dsimplex.vertices`, or one per class
    of the data set (every class of every generation); at least that many."""
    classes = run.splits.bundle.num_classes
    vertices = run.preset.method("dsimplex").vertices or classes
    if vertices < classes:
        raise ValueError(f"methods.dsimplex.vertices = {vertices} is fewer than the data set's "
                         f"{classes} classes; every class needs a vertex")
    return vertices


def simplex_network(run: RunContext, generation: str):
    """A function building generation `old` or `new`'s network as it starts training: the old
    model's network for both (fine-tuning needs one network), `new` loaded with the trained old
    d-Simplex model's weights."""
    s, vertices = run.splits, simplex_size(run)
    init = run.trained(DSimplexName("old"))[0] if generation == "new" else None
    return lambda: simplex_model(run.preset.old.model, s.bundle.channels, vertices, init)


@dataclass(frozen=True)
class DSimplexName(ArtifactName):
    """d-Simplex's model of `generation` `old` or `new`."""

    generation: str
    kind: ClassVar[str] = "dsimplex"
    form: ClassVar[str] = "dsimplex:old|new"
    example: ClassVar[str] = "dsimplex:new"

    def __post_init__(self):
        if self.generation not in ("old", "new"):
            raise ValueError(f"generation must be 'old' or 'new', got {self.generation!r}")

    @classmethod
    def parse(cls, arg: str) -> DSimplexName:
        return cls(arg)

    def __str__(self) -> str:
        return f"dsimplex:{self.generation}"


@artifact_kind(DSimplexName)
def dsimplex_encoder(run: RunContext, name: DSimplexName) -> Artifact:
    """d-Simplex models (`dsimplex:old|new`), both with the old model's network and the classifier
    frozen to the preallocated simplex (cross-entropy over every vertex, no label smoothing):
    `old` on the old classes with the old recipe, `new` fine-tuned from it on all classes with the
    new recipe (0.1 cross-entropy + 0.9 HOC against the old d-Simplex model's features)."""
    generation = name.generation
    s = run.splits
    old = generation == "old"
    training = run.preset.old.training if old else finetune_recipe(run, run.preset.new.training)
    classes = s.old_classes if old else s.all_classes
    upstream = () if old else (run.artifact(DSimplexName("old")),)

    def fit(folder: Path):
        loss = (dsimplex_training_step(prepare_model(run.trained(upstream[0])[0], run.device))
                if upstream
                else classification_loss(LABEL_SMOOTHING))
        # labels are vertex indices: each class's position among all classes
        return fit_classifier(run, folder, simplex_network(run, generation),
                              select_classes(s.train, classes), s.all_classes, loss,
                              training, desc=f"dsimplex {generation}")

    # recipe 2: preallocated simplex, CE over every vertex without smoothing, fine-tuned new
    # model, HOC anchored on the old feature (iamcl2r @18495ac)
    return Artifact(str(name), f"dsimplex-{generation}",
                    (simplex_spec(run.preset.old.model), training, simplex_size(run)),
                    fit, upstream, recipe=2)


@register_method("dsimplex", order=60, criteria=(("dsimplex/old", "dsimplex-old/dsimplex-old"),
                                       ("dsimplex/old", "old/old")), protocol=("cosine",),
                 notation=("`dsimplex-old`, `dsimplex`", "d-Simplex's old and new models"))
def dsimplex_cases(run: RunContext) -> MethodCases:
    """d-Simplex: both generations trained with the same fixed simplex classifier (the new one
    fine-tuned from the old with HOC), compared across models with no transformation; its old
    model's own retrieval (`dsimplex-old/dsimplex-old`) is what `dsimplex/old` must beat to be
    compatible. Its protocol is cosine (the authors L2-normalise features)."""
    old, new = (run.embeddings(DSimplexName(g), "test") for g in ("old", "new"))
    return MethodCases({"dsimplex-old/dsimplex-old": (old, old), "dsimplex/old": (new, old),
                        "dsimplex/dsimplex": (new, new)}, DSimplexName("new"))


@multistep_chain("dsimplex")
def dsimplex_generation(steps: Generations, k: int) -> Artifact:
    """Generation k on one preallocated simplex (the first generation's network), fine-tuned from
    generation k-1 with HOC against it; the first trained with cross-entropy over every vertex."""
    run, classes, stage = steps.run, steps.generations[k], steps.stage(k)
    previous = (steps.generation("dsimplex", k - 1),) if k > 0 else ()
    size, network = simplex_size(run), steps.stage(0).model
    training = finetune_recipe(run, stage.training) if previous else stage.training

    def fit(folder: Path):
        init = run.trained(previous[0])[0] if previous else None
        loss = (dsimplex_training_step(prepare_model(init, run.device)) if previous
                else classification_loss(LABEL_SMOOTHING))
        return fit_classifier(
            run, folder, lambda: simplex_model(network, run.splits.bundle.channels, size, init),
            select_classes(run.splits.train, classes), run.splits.all_classes, loss,
            training, desc=f"dsimplex generation {k + 1}")

    # recipe 2: preallocated simplex, CE over every vertex, fine-tuned generations
    return Artifact(f"gen:dsimplex:{k}", f"multistep-dsimplex{k}",
                    (classes, dataclasses.replace(stage, training=training), size, network), fit,
                    previous, recipe=2)
