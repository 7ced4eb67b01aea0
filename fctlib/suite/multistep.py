"""Multi-step model updates: generations trained on growing class sets, and how well each method
keeps them compatible.

Generation k sees the first `multistep.class_counts[k]` classes; the first generation uses the old
model's recipe, the later ones the new model's. The gallery is stored at each generation with
side-info from one SimCLR model trained on the first generation's images and frozen from then on.
For each method, entry (i, j) of its compatibility matrix is the retrieval of generation i's
queries against generation j's gallery (j <= i) on the whole test split:

- `independent`: every generation trained on its own, compared as they are;
- `bct`: generation k trained with BCT's influence loss (variant `multistep.bct_variant`)
  through generation k-1 (its classifier or its features' class means);
- `dsimplex`: every generation on one preallocated simplex classifier (features without ReLU,
  the first generation's network), k fine-tuned from k-1 with HOC against it;
- `fct-chained`: the independent models, generation j's gallery carried to i through
  h(j -> j+1), ..., h(i-1 -> i), each h(old, side-info) fitted on generation i's training images;
- `fct-direct`: the same with one h(j -> i) per pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fctlib.data.splits import select_classes
from fctlib.evaluation.compatibility import compatibility_scores
from fctlib.methods.bct import build_bct_model, influence_rows, variant_loss
from fctlib.methods.dsimplex import (
    LABEL_SMOOTHING,
    dsimplex_training_step,
    simplex_model,
    simplex_size,
)
from fctlib.methods.fct import train_transformation
from fctlib.methods.independent import fit_classifier
from fctlib.methods.side_info import simclr_artifact
from fctlib.models.backbones import build_model
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.suite.config import StageConfig
from fctlib.suite.run import Run
from fctlib.suite.store import Artifact
from fctlib.training.loop import classification_loss
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


class MultiStep:
    """The multi-step experiment of one run: each method's models per generation, FCT's
    transformations, and the compatibility matrices; every model is an artifact of the run's
    store."""

    def __init__(self, run: Run):
        self.run = run
        cfg = run.preset.multistep
        self.generations = generation_classes(cfg.class_counts, run.splits.bundle.num_classes)

    def stage(self, k: int) -> StageConfig:
        """The recipe of generation k: the old model's for the first, the new model's after."""
        return self.run.preset.old if k == 0 else self.run.preset.new

    # -- artifacts ----------------------------------------------------------------------------
    def generation(self, method: str, k: int) -> Artifact:
        """Generation k of `method` (independent, bct or dsimplex), trained on its classes."""
        if method not in TRAINED:
            raise ValueError(f"method must be one of {TRAINED}, got {method!r}")
        run, classes, stage = self.run, self.generations[k], self.stage(k)
        if method == "bct" and k == 0:
            return self.generation("independent", 0)  # BCT's chain starts from an ordinary model
        if method == "independent" and k > 0 and classes == run.splits.all_classes:
            return run.artifact("new")  # the suite's new model: the same recipe on every class
        previous = (self.generation(method, k - 1),) if method != "independent" and k > 0 else ()
        vertices, channels = len(self.generations[-1]), run.splits.bundle.channels
        bct_weight, variant = run.preset.multistep.bct_weight, run.preset.multistep.bct_variant
        training = stage.training
        if method == "bct":  # the variant's recipe (bt2's own optimiser) and new network
            training = run.preset.bct.training(variant, stage.training)
        simplex = (simplex_size(run), self.stage(0).model)  # d-Simplex: one network, fine-tuned
        depends = {"independent": (), "bct": (bct_weight, variant, training),
                   "dsimplex": simplex}[method]

        def fit(folder: Path):
            smoothing = training.label_smoothing
            loss = classification_loss(smoothing)
            if method == "dsimplex":
                init = run.trained(previous[0])[0] if previous else None
                loss = (dsimplex_training_step(init) if previous
                        else classification_loss(LABEL_SMOOTHING))
                return fit_classifier(
                    run, folder, lambda: simplex_model(simplex[1], channels, simplex[0], init),
                    select_classes(run.splits.train, classes), run.splits.all_classes, loss,
                    stage.training, desc=f"{method} generation {k + 1}")
            if method == "bct":
                weight, covered = influence_rows(
                    variant, run.trained(previous[0])[0].classifier.weight,
                    self.generations[k - 1], vertices, run.embeddings(previous[0], "train"),
                    run.splits.train.labels)
                loss = variant_loss(variant, smoothing, weight[classes], covered[classes],
                                    bct_weight)
            build = ((lambda: build_bct_model(variant, stage.model, channels, len(classes),
                                              run.preset.bct.normsm_scale))
                     if method == "bct" else
                     (lambda: build_model(stage.model, channels, len(classes))))
            return fit_classifier(run, folder, build, select_classes(run.splits.train, classes),
                                  classes, loss, training,
                                  desc=f"{method} generation {k + 1}")

        # d-Simplex recipe 2: preallocated simplex, CE over every vertex, fine-tuned generations
        return Artifact(f"gen:{method}:{k}", f"multistep-{method}{k}",
                        (classes, stage, *depends), fit, previous,
                        recipe=2 if method == "dsimplex" else 1)

    @property
    def side_info(self) -> Artifact:
        """psi: SimCLR on the first generation's training images, frozen for every later one."""
        return simclr_artifact(self.run, "gen:side", self.generations[0],
                               self.run.preset.side_info.model)

    def transformation(self, a: int, b: int) -> Artifact:
        """h(a -> b): generation a's embedding and side-info to generation b's, fitted on the
        training images of generation b's classes."""
        run, cfg = self.run, self.run.preset.transformation
        upstream = (self.generation("independent", a), self.generation("independent", b),
                    self.side_info)

        def fit(folder: Path):
            rows = np.flatnonzero(np.isin(run.splits.train.labels, self.generations[b]))
            old, new, side = (run.embeddings(u, "train")[rows] for u in upstream)
            seed_everything(run.seed)
            model = Transformation(old.shape[1], side.shape[1], new.shape[1],
                                   tuple(cfg.branch_widths), tuple(cfg.mixer_widths))
            return model, train_transformation(model, old, side, new, cfg.training,
                                               seed=run.seed, checkpoint=folder / "model.pt",
                                               device=run.device)

        return Artifact(f"gen:h:{a}:{b}", "multistep-h", (cfg, a, b), fit, upstream)

    def fct_gallery(self, j: int, i: int, chained: bool) -> np.ndarray:
        """Generation j's test gallery carried into generation i's space: through every
        intermediate h (chained) or one h(j -> i) (direct)."""
        run = self.run
        side = run.embeddings(self.side_info, "test")
        gallery = run.embeddings(self.generation("independent", j), "test")
        steps = [(a, a + 1) for a in range(j, i)] if chained else [(j, i)]
        for a, b in steps:
            h, _ = run.trained(self.transformation(a, b))
            gallery = upgrade_embeddings(h, gallery, side, device=run.device)
        return gallery

    # -- compatibility ------------------------------------------------------------------------
    def case(self, method: str, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(query, gallery) test embeddings of entry (i, j) of a method's matrix."""
        embeddings = self.run.embeddings
        if method in TRAINED:
            return (embeddings(self.generation(method, i), "test"),
                    embeddings(self.generation(method, j), "test"))
        if method not in MULTISTEP_METHODS:
            raise ValueError(f"method must be one of {MULTISTEP_METHODS}, got {method!r}")
        query = embeddings(self.generation("independent", i), "test")
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

