"""Multi-step model updates: generations trained on growing class sets, and how well each method
keeps them compatible.

Generation k sees the first `multistep.class_counts[k]` classes; the first generation uses the old
model's recipe, the later ones the new model's. The gallery is stored at each generation with
side-info from one SimCLR model trained on the first generation's images and frozen from then on.
For each method, entry (i, j) of its compatibility matrix is the retrieval of generation i's
queries against generation j's gallery (j <= i) on the whole test split:

- `independent`: every generation trained on its own, compared as they are;
- `bct`: generation k trained with BCT's influence loss through generation k-1's classifier;
- `dsimplex`: every generation on one fixed simplex classifier (features without ReLU),
  k with HOC against k-1;
- `fct-chained`: the independent models, generation j's gallery carried to i through
  h(j -> j+1), ..., h(i-1 -> i), each h(old, side-info) fitted on generation i's training images;
- `fct-direct`: the same with one h(j -> i) per pair.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import torch

from fctlib.data.images import LabeledDataset
from fctlib.data.splits import remap_labels, select_classes
from fctlib.data.transforms import simclr_transform
from fctlib.io import save_json, save_npy_atomic
from fctlib.methods.bct import bct_loss, old_classifier_for_all_classes
from fctlib.methods.dsimplex import SimplexClassifier, dsimplex_training_step, simplex_spec
from fctlib.methods.fct import Transformation, train_transformation, upgrade_embeddings
from fctlib.methods.side_info import train_side_info_model
from fctlib.models.backbones import build_model
from fctlib.suite.config import StageConfig
from fctlib.suite.run import Run, fingerprint
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, train
from fctlib.training.runtime import seed_everything

TRAINED = ("independent", "bct", "dsimplex")  # methods with models of their own per generation
MULTISTEP_METHODS = (*TRAINED, "fct-chained", "fct-direct")


def generation_classes(class_counts: list[int] | None, num_classes: int) -> list[list[int]]:
    """The classes of each generation: the first k by label index for each count (None: half,
    three quarters and all of `num_classes`)."""
    counts = class_counts or [round(num_classes / 2), round(3 * num_classes / 4), num_classes]
    if counts[-1] > num_classes:
        raise ValueError(f"multistep.class_counts {counts} asks for more classes than the data "
                         f"set has ({num_classes})")
    return [list(range(k)) for k in counts]


def compatibility_scores(matrix: np.ndarray) -> tuple[float, float]:
    """(AC, AM) of a lower-triangular compatibility matrix M (query generation i, gallery
    generation j): AC is the share of pairs i > j where M[i, j] beats generation j's own retrieval
    M[j, j]; AM the mean of the lower triangle, diagonal included."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or len(m) < 2:
        raise ValueError(f"need a square matrix of at least 2 generations, got shape {m.shape}")
    rows, cols = np.tril_indices(len(m), k=-1)
    ac = float(np.mean(m[rows, cols] > m[cols, cols]))
    return ac, float(m[np.tril_indices(len(m))].mean())


class MultiStep:
    """The multi-step experiment of one run: each method's models per generation, FCT's
    transformations, and the compatibility matrices. Steps are cached under the run's folder."""

    def __init__(self, run: Run):
        self.run = run
        cfg = run.preset.multistep
        self.generations = generation_classes(cfg.class_counts, run.splits.bundle.num_classes)
        self._models: dict[tuple[str, int], torch.nn.Module] = {}

    def stage(self, k: int) -> StageConfig:
        """The recipe of generation k: the old model's for the first, the new model's after."""
        return self.run.preset.old if k == 0 else self.run.preset.new

    def key(self, method: str, k: int) -> str:
        """A fingerprint of generation k of a method and everything it was trained against."""
        before = [self.key(method, k - 1)] if method != "independent" and k > 0 else []
        extra = {"bct": [self.run.preset.multistep.bct_weight, self.run.preset.bct.new_class_rows],
                 "dsimplex": [len(self.generations[-1]), simplex_spec(self.stage(k).model)],
                 }.get(method, [])
        return fingerprint(method, k, self.generations[k], self.stage(k), *before, *extra)

    # -- models -------------------------------------------------------------------------------
    def model(self, method: str, k: int) -> torch.nn.Module:
        """Generation k of `method` (independent, bct or dsimplex), trained on its classes."""
        if method not in TRAINED:
            raise ValueError(f"method must be one of {TRAINED}, got {method!r}")
        if (method, k) not in self._models:
            self._models[(method, k)] = self._train(method, k)
        return self._models[(method, k)]

    def _train(self, method: str, k: int) -> torch.nn.Module:
        run, classes, stage = self.run, self.generations[k], self.stage(k)
        if method == "bct" and k == 0:
            return self.model("independent", 0)  # BCT's chain starts from an ordinary model
        every_class = classes == list(range(run.splits.bundle.num_classes))
        if method == "independent" and k > 0 and every_class:
            return run.new_model[0]  # the suite's new model: the same recipe on every class
        spec = simplex_spec(stage.model) if method == "dsimplex" else stage.model
        seed_everything(run.seed)  # the initialisation, whatever was trained or loaded before
        model = build_model(spec, run.splits.bundle.channels, len(classes))
        smoothing = stage.training.label_smoothing
        loss = classification_loss(smoothing)
        if method == "dsimplex":
            model.classifier = SimplexClassifier(spec.embedding_dim, len(self.generations[-1]),
                                                 classes)
            if k > 0:
                loss = dsimplex_training_step(self.model("dsimplex", k - 1), smoothing)
        if method == "bct":
            previous = self.model("bct", k - 1)
            weight, covered = old_classifier_for_all_classes(
                previous.classifier.weight, self.generations[k - 1], len(self.generations[-1]),
                self.embeddings(f"bct:{k - 1}", "train"), run.splits.train.labels,
                run.preset.bct.new_class_rows)
            loss = bct_loss(smoothing, weight[classes], covered[classes],
                            run.preset.multistep.bct_weight)
        folder = run.step_dir(f"multistep-{method}{k}", self.key(method, k))
        data = LabeledDataset(remap_labels(select_classes(run.splits.train, classes), classes),
                              run.train_transform())
        history = train(model, data, loss, stage.training, seed=run.seed,
                        checkpoint=folder / "model.pt", device=run.device,
                        desc=f"{method} generation {k + 1}")
        save_json(history, folder / "history.json")
        return model.eval()

    @cached_property
    def side_info_model(self) -> torch.nn.Module:
        """psi: SimCLR on the first generation's training images, frozen for every later one."""
        run, cfg = self.run, self.run.preset.side_info
        images = select_classes(run.splits.train, self.generations[0])
        folder = run.step_dir("multistep-side", cfg, self.generations[0])
        size, channels, mean, std = run.image_stats
        seed_everything(run.seed)
        backbone, history = train_side_info_model(
            images, cfg.model, simclr_transform(size, channels, mean, std), cfg.training,
            seed=run.seed, temperature=cfg.temperature, checkpoint=folder / "model.pt",
            device=run.device)
        save_json(history, folder / "history.json")
        return backbone.eval()

    def embeddings(self, encoder: str, split: str) -> np.ndarray:
        """Embeddings of a split by `<method>:<k>` (generation k of a trained method) or `side`,
        cached."""
        method, _, k = encoder.partition(":")
        if encoder == "bct:0":  # BCT's chain starts from the independent model: one cache
            return self.embeddings("independent:0", split)
        key = (fingerprint(self.run.preset.side_info, self.generations[0]) if method == "side"
               else self.key(method, int(k)))
        path = self.run.root / "multistep" / f"{encoder.replace(':', '_')}-{key}" / f"{split}.npy"
        if path.exists():
            return np.load(path)
        model = self.side_info_model if method == "side" else self.model(method, int(k))
        array = embed(model, self.run.splits.split(split), self.run.eval_transform(),
                      device=self.run.device, desc=f"embed {encoder} {split}")
        save_npy_atomic(array, path)
        return array

    # -- FCT ----------------------------------------------------------------------------------
    def transformation(self, a: int, b: int) -> Transformation:
        """h(a -> b): generation a's embedding and side-info to generation b's, fitted on the
        training images of generation b's classes."""
        run, cfg = self.run, self.run.preset.transformation
        rows = np.flatnonzero(np.isin(run.splits.train.labels, self.generations[b]))
        old = self.embeddings(f"independent:{a}", "train")[rows]
        side = self.embeddings("side", "train")[rows]
        new = self.embeddings(f"independent:{b}", "train")[rows]
        folder = run.step_dir("multistep-h", dataclasses.asdict(cfg), a, b,
                              self.key("independent", a), self.key("independent", b),
                              run.preset.side_info, self.generations[0])
        seed_everything(run.seed)
        model = Transformation(old.shape[1], side.shape[1], new.shape[1],
                               tuple(cfg.branch_widths), tuple(cfg.mixer_widths))
        history = train_transformation(model, old, side, new, cfg.training, seed=run.seed,
                                       checkpoint=folder / "model.pt", device=run.device)
        save_json(history, folder / "history.json")
        return model.eval()

    def fct_gallery(self, j: int, i: int, chained: bool) -> np.ndarray:
        """Generation j's test gallery carried into generation i's space: through every
        intermediate h (chained) or one h(j -> i) (direct)."""
        side = self.embeddings("side", "test")
        gallery = self.embeddings(f"independent:{j}", "test")
        steps = [(a, a + 1) for a in range(j, i)] if chained else [(j, i)]
        for a, b in steps:
            gallery = upgrade_embeddings(self.transformation(a, b), gallery, side,
                                         device=self.run.device)
        return gallery

    # -- compatibility ------------------------------------------------------------------------
    def case(self, method: str, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(query, gallery) test embeddings of entry (i, j) of a method's matrix."""
        if method in TRAINED:
            return (self.embeddings(f"{method}:{i}", "test"),
                    self.embeddings(f"{method}:{j}", "test"))
        if method not in MULTISTEP_METHODS:
            raise ValueError(f"method must be one of {MULTISTEP_METHODS}, got {method!r}")
        query = self.embeddings(f"independent:{i}", "test")
        if i == j:
            return query, query
        return query, self.fct_gallery(j, i, chained=method == "fct-chained")

    def matrices(self, methods: tuple[str, ...] = MULTISTEP_METHODS,
                 distance: str | None = None) -> dict[str, dict]:
        """{method: {metric: lower-triangular matrix as nested lists (None above the diagonal),
        AC and AM per metric}} on the test split, all queries, under `distance` (None: the
        preset's); metrics as fractions."""
        out = {}
        n = len(self.generations)
        for method in methods:
            values = {m: np.full((n, n), np.nan) for m in ("top1", "mAP")}
            for i in range(n):
                for j in range(i + 1):
                    result = self.run.evaluate(*self.case(method, i, j),
                                               distance=distance)["all"]
                    for m in values:
                        values[m][i, j] = result[m]
            out[method] = {}
            for m, matrix in values.items():
                ac, am = compatibility_scores(matrix)
                out[method][m] = [[None if np.isnan(v) else float(v) for v in row]
                                  for row in matrix]
                out[method][f"AC_{m}"], out[method][f"AM_{m}"] = ac, am
        return out

