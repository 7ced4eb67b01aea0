"""Multi-step model updates: generations trained on growing class sets, and how well each method
keeps them compatible.

Generation k sees the first `multistep.class_counts[k]` classes; the first generation uses the old
model's recipe, the later ones the new model's. The gallery is stored at each generation with
side-info from one SimCLR model trained on the first generation's images and frozen from then on.
For each method, entry (i, j) of its compatibility matrix is the retrieval of generation i's
queries against generation j's gallery (j <= i) on the whole test split. A method with models of
its own registers how generation k is trained in its module (`methods.registry.multistep_chain`):

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

import fctlib.methods  # noqa: F401  (registers every method's chain)
from fctlib.evaluation.compatibility import compatibility_scores
from fctlib.methods.fct import train_transformation
from fctlib.methods.registry import CHAINS
from fctlib.methods.side_info import simclr_artifact
from fctlib.models.transformation import Transformation, upgrade_embeddings
from fctlib.suite.config import StageConfig
from fctlib.suite.run import Run
from fctlib.suite.store import Artifact
from fctlib.training.runtime import seed_everything

TRAINED = tuple(CHAINS)  # methods with models of their own per generation, as registered
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
        """Generation k of a method with models of its own (independent, bct, dsimplex): the rule
        its module registers (`methods.registry.multistep_chain`)."""
        if method not in CHAINS:
            raise ValueError(f"method must be one of {TRAINED}, got {method!r}")
        return CHAINS[method](self, k)

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

