"""The suite's steps on one preset and seed, each cached under a folder named by its parameters.

A step's folder is `runs/<preset>/seed<k>/<step>-<fingerprint>/`, where the fingerprint hashes
everything the step depends on (its settings and its inputs' fingerprints). Re-running a step with
the same parameters loads its artifacts; changed parameters get a new folder; a step interrupted
mid-training resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from fctlib.data.images import ImageSet, LabeledDataset
from fctlib.data.sources import DataBundle, load_dataset
from fctlib.data.splits import (
    carve_tune,
    default_old_classes,
    nested_share,
    remap_labels,
    select_classes,
    subsample_per_class,
    validate_class_split,
)
from fctlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    simclr_transform,
    train_transform,
)
from fctlib.evaluation.retrieval import evaluate_case
from fctlib.io import save_json, save_npy_atomic
from fctlib.methods.bct import bct_loss, old_classifier_for_all_classes
from fctlib.methods.dsimplex import SimplexClassifier, dsimplex_training_step, simplex_spec
from fctlib.methods.fastfill import FastFill, train_fastfill, upgrade_with_uncertainty
from fctlib.methods.fct import Transformation, train_transformation, upgrade_embeddings
from fctlib.methods.oca import OCAHead, OCAModel, class_prototypes, oca_training_step
from fctlib.methods.projection import Projection, project_embeddings, train_projection
from fctlib.methods.side_info import (
    random_side_info_model,
    side_info_training_images,
    train_side_info_model,
)
from fctlib.models.backbones import EmbeddingClassifier, build_backbone, build_model
from fctlib.models.spec import ModelSpec
from fctlib.paths import project_root
from fctlib.suite.config import SIDE_INFO_SOURCES, Preset, load_preset
from fctlib.training.config import TrainConfig
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, train
from fctlib.training.runtime import default_device, derived_seed, seed_everything

CROSS_CHANGES = ("arch", "loss")  # how a cross model differs from the new one
SPLIT_SEED = 0  # data splits are fixed across seeds: seeds vary initialisation and training only
# Seed streams of the side-info ablation's networks: never the old model's initialisation, even
# where the side-info network has the old model's shape.
SIDE_SOURCE_STREAM = {"supervised": 1, "random": 2}


def side_encoder(dim: int, source: str = "simclr") -> str:
    """The encoder name of side-info of size `dim` from `source`: `side:<dim>` for the default
    SimCLR model (the name its cached embeddings have always had), else `side:<dim>:<source>`."""
    if source not in SIDE_INFO_SOURCES:
        raise ValueError(f"unknown side-info source {source!r}; choose one of {SIDE_INFO_SOURCES}")
    return f"side:{dim}" if source == "simclr" else f"side:{dim}:{source}"


def _scaled(widths: list[int], factor: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * factor)) for w in widths)


def fingerprint(*parts) -> str:
    """A short stable hash of plain data (dataclasses, dicts, lists, numbers, strings)."""
    def plain(x):
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class Splits:
    """The data of a run: train / tune / test image sets and the class split."""

    train: ImageSet
    tune: ImageSet
    test: ImageSet
    bundle: DataBundle
    old_classes: list[int]

    @property
    def new_classes(self) -> list[int]:
        """The classes only the new model sees."""
        return [c for c in range(self.bundle.num_classes) if c not in self.old_classes]

    def split(self, name: str) -> ImageSet:
        """The image set called `name` (train, tune or test)."""
        return {"train": self.train, "tune": self.tune, "test": self.test}[name]

    def summary(self) -> list[dict]:
        """Images per split, in old and in new classes."""
        old = self.old_classes
        return [{"split": name, "images": len(images),
                 "classes": len(set(images.labels.tolist())),
                 "old-class images": int(np.isin(images.labels, old).sum()),
                 "new-class images": int((~np.isin(images.labels, old)).sum())}
                for name, images in (("train", self.train), ("tune", self.tune),
                                     ("test", self.test))]


def load_splits(preset: Preset) -> Splits:
    """Load the data set and carve train / tune / test and the old classes, deterministically."""
    cfg = preset.data
    bundle = load_dataset(cfg.dataset)
    old = validate_class_split(
        cfg.old_classes if cfg.old_classes is not None else default_old_classes(bundle.num_classes),
        bundle.num_classes,
    )
    train_pool = subsample_per_class(bundle.train, cfg.train_per_class, SPLIT_SEED)
    train, tune = carve_tune(train_pool, cfg.tune_fraction, SPLIT_SEED)
    return Splits(
        train=train,
        tune=tune,
        test=subsample_per_class(bundle.test, cfg.test_per_class, SPLIT_SEED),
        bundle=bundle,
        old_classes=old,
    )


class Run:
    """One preset at one seed: its data, its cached steps, and the evaluation of every case."""

    def __init__(self, preset: str | Preset, seed: int, *, overrides: dict | None = None,
                 runs_dir: str | Path | None = None, results_dir: str | Path | None = None,
                 device: torch.device | None = None):
        self.preset = preset if isinstance(preset, Preset) else load_preset(preset, overrides)
        self.seed = seed
        base = Path(runs_dir) if runs_dir else project_root() / "runs"
        self.root = base / self.preset.name / f"seed{seed}"
        self.results_dir = Path(results_dir or project_root() / "results" / self.preset.name)
        self.device = device or default_device()

    def save_metrics(self, step: str, metrics: dict) -> Path:
        """Write a step's metrics to results/<preset>/metrics/seed<k>/<step>.json, atomically."""
        folder = self.results_dir / "metrics" / f"seed{self.seed}"
        return save_json(metrics, folder / f"{step}.json")

    @cached_property
    def splits(self) -> Splits:
        """The preset's data splits, loaded once per run."""
        return load_splits(self.preset)

    # -- transforms ---------------------------------------------------------------------------
    @property
    def image_stats(self) -> tuple:
        """(image size, channels, mean, std) of the preset's normalization."""
        b = self.splits.bundle
        if self.preset.data.normalization == "dataset":
            return b.image_size, b.channels, b.mean, b.std
        if b.channels != 3:
            raise ValueError(
                f"normalization 'imagenet' needs RGB images, but {b.source} has {b.channels} "
                "channel(s); set data.normalization: dataset or data.dataset.channels: 3"
            )
        return b.image_size, b.channels, IMAGENET_MEAN, IMAGENET_STD

    def train_transform(self):
        """The training augmentation of the preset's images."""
        size, ch, mean, std = self.image_stats
        d = self.preset.data
        return train_transform(size, ch, mean, std, crop_padding=d.crop_padding, flip=d.flip)

    def eval_transform(self):
        """The preset's images, normalised, without augmentation."""
        return eval_transform(*self.image_stats)

    # -- step folders -------------------------------------------------------------------------
    def _data_key(self) -> str:
        return fingerprint(self.preset.data, self.splits.old_classes)

    def step_dir(self, step: str, *parts) -> Path:
        """The folder of a step, named by a fingerprint of its parameters and the data."""
        return self.root / f"{step}-{fingerprint(self._data_key(), self.seed, *parts)}"

    # -- supervised models --------------------------------------------------------------------
    def _classifier(self, name: str, spec: ModelSpec, cfg: TrainConfig, images: ImageSet,
                    classes: list[int], loss, *key, seed: int | None = None
                    ) -> tuple[EmbeddingClassifier, list[dict]]:
        folder = self.step_dir(name, spec, cfg, *key)
        seed = self.seed if seed is None else seed
        seed_everything(seed)
        model = build_model(spec, self.splits.bundle.channels, len(classes))
        data = LabeledDataset(remap_labels(images, classes), self.train_transform())
        history = train(model, data, loss, cfg, seed=seed, checkpoint=folder / "model.pt",
                        device=self.device, desc=name)
        save_json(history, folder / "history.json")
        return model.eval(), history

    @cached_property
    def old_model(self) -> tuple[EmbeddingClassifier, list[dict]]:
        """phi_old: trained on the old classes' training images; returns (model, history)."""
        s, cfg = self.splits, self.preset.old
        images = select_classes(s.train, s.old_classes)
        return self._classifier("old", cfg.model, cfg.training, images, s.old_classes,
                                classification_loss(cfg.training.label_smoothing))

    @cached_property
    def new_model(self) -> tuple[EmbeddingClassifier, list[dict]]:
        """phi_new: trained on every class, unmodified (independent of the old model)."""
        cfg, classes = self.preset.new, list(range(self.splits.bundle.num_classes))
        return self._classifier("new", cfg.model, cfg.training, self.splits.train, classes,
                                classification_loss(cfg.training.label_smoothing))

    def bct_model(self, weight: float) -> tuple[EmbeddingClassifier, list[dict]]:
        """phi_new trained with BCT's influence loss (given weight) against the frozen old model."""
        cfg, s = self.preset.new, self.splits
        if cfg.model.embedding_dim != self.preset.old.model.embedding_dim:
            raise ValueError(
                "BCT needs the old and new embedding sizes to match "
                f"({self.preset.old.model.embedding_dim} vs {cfg.model.embedding_dim})"
            )
        old, _ = self.old_model
        old_train = self.embeddings("old", "train")
        weight_matrix, covered = old_classifier_for_all_classes(
            old.classifier.weight, s.old_classes, s.bundle.num_classes, old_train,
            s.train.labels, self.preset.bct.new_class_rows,
        )
        loss = bct_loss(cfg.training.label_smoothing, weight_matrix, covered, weight)
        classes = list(range(s.bundle.num_classes))
        return self._classifier("bct", cfg.model, cfg.training, s.train, classes, loss,
                                self.preset.old, self.preset.bct.new_class_rows, weight)

    def dsimplex_model(self, generation: str) -> tuple[EmbeddingClassifier, list[dict]]:
        """d-Simplex models (simplex_spec of the stage's network), both with the classifier frozen
        to the simplex of every class: `old` on the old classes (cross-entropy), `new` on all
        classes (0.1 cross-entropy + 0.9 HOC against the old d-Simplex model's features)."""
        if generation not in ("old", "new"):
            raise ValueError(f"generation must be 'old' or 'new', got {generation!r}")
        s, total = self.splits, self.splits.bundle.num_classes
        cfg = self.preset.old if generation == "old" else self.preset.new
        classes = s.old_classes if generation == "old" else list(range(total))
        images = select_classes(s.train, classes) if generation == "old" else s.train
        smoothing = cfg.training.label_smoothing
        loss = (classification_loss(smoothing) if generation == "old"
                else dsimplex_training_step(self.dsimplex_model("old")[0], smoothing))
        key = [] if generation == "old" else [simplex_spec(self.preset.old.model), self.preset.old]
        spec = simplex_spec(cfg.model)
        folder = self.step_dir(f"dsimplex-{generation}", spec, cfg.training, *key)
        seed_everything(self.seed)
        model = build_model(spec, s.bundle.channels, len(classes))
        model.classifier = SimplexClassifier(spec.embedding_dim, total, classes)
        data = LabeledDataset(remap_labels(images, classes), self.train_transform())
        history = train(model, data, loss, cfg.training, seed=self.seed,
                        checkpoint=folder / "model.pt", device=self.device,
                        desc=f"dsimplex {generation}")
        save_json(history, folder / "history.json")
        return model.eval(), history

    def oca_model(self) -> tuple[OCAModel, list[dict]]:
        """OCA's new model (new recipe, every class): an embedding `oca.extra_dims` wider than the
        old one under the orthogonal head, trained with oca_loss against the old model's class
        prototypes (mean old embeddings of the training set, new classes included)."""
        cfg, s = self.preset.new, self.splits
        old_dim = self.preset.old.model.embedding_dim
        classes = list(range(s.bundle.num_classes))
        prototypes = class_prototypes(self.embeddings("old", "train"),
                                      remap_labels(s.train, classes).labels, len(classes))
        spec = dataclasses.replace(cfg.model, embedding_dim=old_dim + self.preset.oca.extra_dims)
        folder = self.step_dir("oca", spec, cfg.training, self.preset.old)
        seed_everything(self.seed)
        model = OCAModel(build_backbone(spec, s.bundle.channels),
                         OCAHead(old_dim, len(classes), self.preset.oca.extra_dims))
        loss = oca_training_step(prototypes, old_dim, cfg.training.label_smoothing)
        data = LabeledDataset(remap_labels(s.train, classes), self.train_transform())
        history = train(model, data, loss, cfg.training, seed=self.seed,
                        checkpoint=folder / "model.pt", device=self.device, desc="oca")
        save_json(history, folder / "history.json")
        return model.eval(), history

    def cross_model(self, change: str) -> tuple[EmbeddingClassifier, list[dict]]:
        """A new model unlike the old one beyond its classes, trained with the new recipe on every
        class: `arch`, the network of `cross.model` (another family); `loss`, the new network
        trained with a normalized softmax (cosine classifier of scale `cross.cosine_scale`)."""
        if change not in CROSS_CHANGES:
            raise ValueError(f"change must be one of {CROSS_CHANGES}, got {change!r}")
        cfg, cross = self.preset.new, self.preset.cross
        classes = list(range(self.splits.bundle.num_classes))
        spec = cross.model if change == "arch" else cfg.model
        scale = cross.cosine_scale if change == "loss" else None
        folder = self.step_dir(f"new-{change}", spec, cfg.training, scale)
        seed_everything(self.seed)
        model = build_model(spec, self.splits.bundle.channels, len(classes), cosine_scale=scale)
        data = LabeledDataset(remap_labels(self.splits.train, classes), self.train_transform())
        history = train(model, data, classification_loss(cfg.training.label_smoothing),
                        cfg.training, seed=self.seed, checkpoint=folder / "model.pt",
                        device=self.device, desc=f"new ({change})")
        save_json(history, folder / "history.json")
        return model.eval(), history

    def side_info_model(self, dim: int, source: str = "simclr"
                        ) -> tuple[torch.nn.Module, list[dict]]:
        """psi with `dim` outputs: SimCLR on the old classes' training images, without labels; with
        `source` "supervised" the same network trained with the old classes' labels (the old model's
        recipe), "random" that network untrained (empty history). Returns (backbone, history)."""
        cfg = self.preset.side_info
        spec = dataclasses.replace(cfg.model, embedding_dim=dim)
        side_encoder(dim, source)  # validates the source
        if source == "random":
            seed = derived_seed(self.seed, SIDE_SOURCE_STREAM["random"])
            return random_side_info_model(spec, self.splits.bundle.channels, seed=seed), []
        if source == "supervised":
            s, recipe = self.splits, self.preset.old.training
            model, history = self._classifier(
                "side-supervised", spec, recipe, select_classes(s.train, s.old_classes),
                s.old_classes, classification_loss(recipe.label_smoothing),
                seed=derived_seed(self.seed, SIDE_SOURCE_STREAM["supervised"]))
            return model.backbone.eval(), history
        folder = self.step_dir("side", spec, cfg.training, cfg.temperature)
        images = side_info_training_images(self.splits.train, self.splits.old_classes)
        size, ch, mean, std = self.image_stats
        seed_everything(self.seed)
        backbone, history = train_side_info_model(
            images, spec, simclr_transform(size, ch, mean, std), cfg.training, seed=self.seed,
            temperature=cfg.temperature, checkpoint=folder / "model.pt", device=self.device,
        )
        save_json(history, folder / "history.json")
        return backbone.eval(), history

    # -- embeddings ---------------------------------------------------------------------------
    def _encoder(self, name: str) -> torch.nn.Module:
        kind, _, arg = name.partition(":")
        if kind == "old":
            return self.old_model[0]
        if kind == "new":
            return self.new_model[0]
        if kind == "bct":
            return self.bct_model(float(arg))[0]
        if kind == "side":
            dim, _, source = arg.partition(":")
            return self.side_info_model(int(dim), source or "simclr")[0]
        if kind == "dsimplex":
            return self.dsimplex_model(arg)[0]
        if kind == "oca":
            return self.oca_model()[0]
        if kind == "cross":
            return self.cross_model(arg)[0]
        raise ValueError(f"unknown encoder {name!r}")

    def _encoder_key(self, name: str) -> str:
        kind, _, arg = name.partition(":")
        cfg = {"old": self.preset.old, "new": self.preset.new, "bct": self.preset.new,
               "side": self.preset.side_info, "oca": self.preset.new, "cross": self.preset.new,
               "dsimplex": self.preset.new if arg == "new" else self.preset.old}[kind]
        extra = [self.preset.old, self.preset.bct.new_class_rows] if kind == "bct" else []
        if kind == "oca":
            extra = [self.preset.old, self.preset.oca]
        if kind == "cross":
            extra = [self.preset.cross]
        if kind == "dsimplex":  # the network without its embedding ReLU (simplex_spec)
            extra = [simplex_spec(cfg.model)]
        if kind == "dsimplex" and arg == "new":
            extra += [self.preset.old]  # trained against the old d-Simplex model
        if kind == "side" and arg.endswith(":supervised"):
            extra = [self.preset.old.training]  # trained with the old model's recipe
        return fingerprint(name, cfg, *extra, self._data_key(), self.seed)

    def embeddings(self, name: str, split: str) -> np.ndarray:
        """Embeddings of a split by an encoder (`old`, `new`, `bct:<w>`, `side:<dim>[:<source>]`,
        `dsimplex:old|new`, `oca` (the whole aligned embedding), `cross:arch|loss`), cached."""
        path = self.root / "embeddings" / f"{name.replace(':', '_')}-{self._encoder_key(name)}"
        path = path / f"{split}.npy"
        if path.exists():
            return np.load(path)
        array = embed(self._encoder(name), self.splits.split(split), self.eval_transform(),
                      device=self.device, desc=f"embed {name} {split}")
        save_npy_atomic(array, path)
        return array

    # -- transformation -----------------------------------------------------------------------
    def _training_features(self, side_dim: int, source: str = "simclr", target: str = "new"
                           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(old, side, new) features of the training set, over `feature_views` augmented passes;
        `new` by the encoder `target`."""
        views = self.preset.transformation.feature_views
        if views == 1:
            side = self.embeddings(side_encoder(side_dim, source), "train") if side_dim else None
            return self.embeddings("old", "train"), side, self.embeddings(target, "train")
        encoders = [self.old_model[0], self._encoder(target)]
        if side_dim:
            encoders.append(self.side_info_model(side_dim, source)[0])
        chunks = [embed(encoders, self.splits.train, self.train_transform(), device=self.device,
                        seed=self.seed * 1000 + v, desc=f"features view {v + 1}/{views}")
                  for v in range(views)]
        old, new = (np.concatenate([c[i] for c in chunks]) for i in (0, 1))
        side = np.concatenate([c[2] for c in chunks]) if side_dim else None
        return old, side, new

    def share_rows(self, share: float) -> np.ndarray:
        """Rows of the training set that fit h at a data share: `splits.nested_share` of its labels
        with the run's seed (stratified by class, nested across shares)."""
        return nested_share(self.splits.train.labels, share, self.seed)

    def transformation(self, side_dim: int, *, source: str = "simclr", data_share: float = 1.0,
                       width_factor: float = 1.0, target: str = "new"
                       ) -> tuple[Transformation, list[dict]]:
        """h fitted on the training set; `side_dim=0` is the no-side-info transformation. Ablations:
        side-info from `source` (see side_info_model), fitted on a `data_share` of the training set
        (share_rows), hidden widths (branches and mixer) times `width_factor`. `target`: the encoder
        h maps to (`new`, or a `cross:arch|loss` model)."""
        cfg = self.preset.transformation
        upstream = [self._encoder_key("old"), self._encoder_key(target)]
        side_name = side_encoder(side_dim, source)  # validates the source, used or not
        if side_dim:
            upstream.append(self._encoder_key(side_name))
        # the default h keeps the folder it has always had; an ablated one is keyed by its changes
        variant = ([] if (data_share, width_factor) == (1.0, 1.0)
                   else [{"data_share": data_share, "width_factor": width_factor}])
        folder = self.step_dir("transformation", cfg, side_dim, *upstream, *variant)
        old, side, new = self._training_features(side_dim, source, target)
        if data_share != 1.0:
            rows = self.share_rows(data_share)
            rows = np.concatenate([rows + v * len(self.splits.train)
                                   for v in range(cfg.feature_views)])
            old, new = old[rows], new[rows]
            side = side[rows] if side is not None else None
        seed_everything(self.seed)
        model = Transformation(old.shape[1], side_dim, new.shape[1],
                               _scaled(cfg.branch_widths, width_factor),
                               _scaled(cfg.mixer_widths, width_factor))
        history = train_transformation(model, old, side, new, cfg.training, seed=self.seed,
                                       checkpoint=folder / "model.pt", device=self.device)
        save_json(history, folder / "history.json")
        return model.eval(), history

    def transformed_gallery(self, side_dim: int, split: str = "test", **ablation) -> np.ndarray:
        """h(old embedding, side-info) of a split: the upgraded gallery, computed without images;
        `ablation`: transformation's keywords (source, data_share, width_factor, target)."""
        model, _ = self.transformation(side_dim, **ablation)
        source = ablation.get("source", "simclr")
        side = self.embeddings(side_encoder(side_dim, source), split) if side_dim else None
        return upgrade_embeddings(model, self.embeddings("old", split), side, device=self.device)

    # -- FastFill -----------------------------------------------------------------------------
    def fastfill_transformation(self, side_dim: int) -> tuple[FastFill, list[dict]]:
        """FastFill's h (the transformation's widths) and uncertainty head, fitted on the training
        set against the frozen new classifier; `side_dim=0`: without side-info."""
        cfg, h = self.preset.fastfill, self.preset.transformation
        upstream = [self._encoder_key("old"), self._encoder_key("new")]
        if side_dim:
            upstream.append(self._encoder_key(f"side:{side_dim}"))
        folder = self.step_dir("fastfill", cfg, h.branch_widths, h.mixer_widths, h.feature_views,
                               side_dim, *upstream)
        old, side, new = self._training_features(side_dim)
        classes = list(range(self.splits.bundle.num_classes))
        labels = remap_labels(self.splits.train, classes).labels
        seed_everything(self.seed)
        model = FastFill(Transformation(old.shape[1], side_dim, new.shape[1],
                                        tuple(h.branch_widths), tuple(h.mixer_widths)),
                         cfg.head_width)
        history = train_fastfill(
            model, old, side, new, np.tile(labels, len(old) // len(labels)),
            self.new_model[0].classifier.weight, cfg.training, mu=cfg.mu, seed=self.seed,
            checkpoint=folder / "model.pt", device=self.device,
        )
        save_json(history, folder / "history.json")
        return model.eval(), history

    def fastfill_gallery(self, side_dim: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """FastFill's transformed gallery of a split (from stored vectors) and each item's sigma."""
        model, _ = self.fastfill_transformation(side_dim)
        side = self.embeddings(f"side:{side_dim}", split) if side_dim else None
        return upgrade_with_uncertainty(model, self.embeddings("old", split), side,
                                        device=self.device)

    # -- backward projection ------------------------------------------------------------------
    def projection(self) -> tuple[Projection, list[dict]]:
        """g: new embedding -> old embedding, fitted by MSE on the training set's cached
        embeddings by the new and the old model (the same images)."""
        cfg = self.preset.projection
        folder = self.step_dir("projection", cfg, self._encoder_key("old"),
                               self._encoder_key("new"))
        old, new = self.embeddings("old", "train"), self.embeddings("new", "train")
        seed_everything(self.seed)
        model = Projection(new.shape[1], old.shape[1], tuple(cfg.hidden_widths))
        history = train_projection(model, new, old, cfg.training, seed=self.seed,
                                   checkpoint=folder / "model.pt", device=self.device)
        save_json(history, folder / "history.json")
        return model.eval(), history

    def projected_queries(self, split: str = "test") -> np.ndarray:
        """g(new embedding) of a split: new-model queries mapped into the old model's space."""
        model, _ = self.projection()
        return project_embeddings(model, self.embeddings("new", split), device=self.device)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, query: np.ndarray, gallery: np.ndarray, split: str = "test",
                 distance: str | None = None) -> dict:
        """Metrics by class split ({all, old, new} -> {top1, top5, mAP, ...}) of a case, under
        `distance` (None: the preset's)."""
        return evaluate_case(query, gallery, self.splits.split(split).labels,
                             self.splits.old_classes, distance=distance or self.preset.distance)

    def all_cases(self, split: str = "tune") -> dict[str, dict]:
        """Every case of the main comparison on a split (BCT at each swept weight): the view used
        to explore a protocol on `tune` before anything is run on `test`."""
        old, new = self.embeddings("old", split), self.embeddings("new", split)
        side_dim = self.preset.side_info.model.embedding_dim
        cases = {"old/old": self.evaluate(old, old, split),
                 "new/new": self.evaluate(new, new, split)}
        for w in self.preset.bct.weights:
            bct = self.embeddings(f"bct:{w}", split)
            cases[f"bct/old w={w}"] = self.evaluate(bct, old, split)
            cases[f"bct/bct w={w}"] = self.evaluate(bct, bct, split)
        for name, dim in (("fct/no-side", 0), ("fct/side", side_dim)):
            cases[name] = self.evaluate(new, self.transformed_gallery(dim, split), split)
        return cases

    def choose_bct_weight(self) -> tuple[float, list[dict]]:
        """The BCT weight with the best cross-model retrieval (bct/old, mean of top-1 and mAP) on
        the tune split; returns it and the whole sweep (tune metrics of bct/old and bct/bct)."""
        old_tune = self.embeddings("old", "tune")
        sweep = []
        for w in self.preset.bct.weights:
            bct_tune = self.embeddings(f"bct:{w}", "tune")
            cross = self.evaluate(bct_tune, old_tune, "tune")["all"]
            own = self.evaluate(bct_tune, bct_tune, "tune")["all"]
            sweep.append({"weight": w, "bct/old": cross, "bct/bct": own,
                          "score": (cross["top1"] + cross["mAP"]) / 2})
        best = max(sweep, key=lambda row: row["score"])
        return best["weight"], sweep

