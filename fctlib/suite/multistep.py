"""Multi-step model updates: generations trained on growing class sets, and how well each method
keeps them compatible.

Generation k sees the first `multistep.class_counts[k]` classes; the first generation uses the old
model's recipe, the later ones the new model's. The gallery is stored at each generation with
side-info from one SimCLR model trained on the first generation's images and frozen from then on.
For each method, entry (i, j) of its compatibility matrix is the retrieval of generation i's
queries against generation j's gallery (j <= i) on the whole test split. A method with models of
its own registers how generation k is trained in its module (`methods.registry.multistep_chain`),
one without its matrix entries (`multistep_case`, as FCT's carried galleries in `methods/fct.py`).
"""

from __future__ import annotations

import numpy as np

import fctlib.methods  # noqa: F401  (registers every method's chain)
from fctlib.evaluation.compatibility import compatibility_scores
from fctlib.experiment.config import StageConfig
from fctlib.experiment.store import Artifact
from fctlib.methods.registry import CASES, CHAINS, in_order
from fctlib.suite.run import Run

TRAINED = in_order(CHAINS)  # methods with models of their own per generation, as registered
MULTISTEP_METHODS = (*TRAINED, *in_order(CASES))  # and those whose cases are built otherwise


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
        """Generation k of a method with models of its own: the rule its module registers
        (`methods.registry.multistep_chain`)."""
        if method not in CHAINS:
            raise ValueError(f"method must be one of {TRAINED}, got {method!r}")
        return CHAINS[method](self, k)

    # -- compatibility ------------------------------------------------------------------------
    def case(self, method: str, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(query, gallery) test embeddings of entry (i, j) of a method's matrix: its own
        generations', or the rule its module registers (`methods.registry.multistep_case`)."""
        if method in CASES:
            return CASES[method](self, i, j)
        if method not in TRAINED:
            raise ValueError(f"method must be one of {MULTISTEP_METHODS}, got {method!r}")
        embeddings = self.run.embeddings
        return (embeddings(self.generation(method, i), "test"),
                embeddings(self.generation(method, j), "test"))

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

