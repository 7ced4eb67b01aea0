"""The methods comparison: every model-update method's cases on the test split, under each distance,
beside that method's own new model on its own (what compatibility cost it).

A method is a function of a run returning its cases (query and gallery embeddings) and the encoder
of its new model; METHODS lists them in table order, so a new method is one function and one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fctlib.evaluation.retrieval import DISTANCES
from fctlib.suite.run import Run


@dataclass
class MethodCases:
    """A method's cases on the test split ({case: (query, gallery)}) and its new model's encoder
    (`new`, `bct:<w>`): the model whose own retrieval (query = gallery) gives `new_top1`."""

    cases: dict[str, tuple[np.ndarray, np.ndarray]]
    own_encoder: str


def independent(run: Run) -> MethodCases:
    """No compatibility: the old model searches its gallery, the new one a fully backfilled one;
    `new/old` (where the sizes match) shows that independently trained models are incompatible."""
    old, new = run.embeddings("old", "test"), run.embeddings("new", "test")
    cases = {"old/old": (old, old), "new/new": (new, new)}
    if old.shape[1] == new.shape[1]:
        cases["new/old"] = (new, old)
    return MethodCases(cases, "new")


def bct(run: Run) -> MethodCases:
    """BCT at the influence-loss weight chosen on the tune split (Run.choose_bct_weight)."""
    weight, _ = run.choose_bct_weight()
    own = f"bct:{weight}"
    query, old = run.embeddings(own, "test"), run.embeddings("old", "test")
    return MethodCases({"bct/old": (query, old), "bct/bct": (query, query)}, own)


def fct(run: Run) -> MethodCases:
    """FCT: new queries against the transformed old gallery, without and with side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fct/no-side": (new, run.transformed_gallery(0)),
                        "fct/side": (new, run.transformed_gallery(dim))}, "new")


def fastfill(run: Run) -> MethodCases:
    """FastFill at 0% backfill: new queries against its transformed gallery, without and with
    side-info."""
    new, dim = run.embeddings("new", "test"), run.preset.side_info.model.embedding_dim
    return MethodCases({"fastfill/no-side": (new, run.fastfill_gallery(0)[0]),
                        "fastfill/side": (new, run.fastfill_gallery(dim)[0])}, "new")


def projection(run: Run) -> MethodCases:
    """Backward projection: g(new query) against the old gallery, unchanged."""
    return MethodCases({"proj/old": (run.projected_queries(), run.embeddings("old", "test"))},
                       "new")


def dsimplex(run: Run) -> MethodCases:
    """d-Simplex: both generations trained with the same fixed simplex classifier (the new one
    with HOC), compared across models with no transformation; its old model's own retrieval
    (`dsimplex-old/dsimplex-old`) is what `dsimplex/old` must beat to be compatible."""
    old, new = run.embeddings("dsimplex:old", "test"), run.embeddings("dsimplex:new", "test")
    return MethodCases({"dsimplex-old/dsimplex-old": (old, old), "dsimplex/old": (new, old),
                        "dsimplex/dsimplex": (new, new)}, "dsimplex:new")


def oca(run: Run) -> MethodCases:
    """OCA: the old-size slice of the new aligned embedding searches the old gallery directly
    (`oca/old`); the whole embedding searches its own gallery (`oca/oca`)."""
    aligned = run.embeddings("oca", "test")
    old = run.embeddings("old", "test")
    return MethodCases({"oca/old": (aligned[:, : old.shape[1]], old),
                        "oca/oca": (aligned, aligned)}, "oca")


def _fct_to(run: Run, change: str) -> MethodCases:
    encoder, dim = f"cross:{change}", run.preset.side_info.model.embedding_dim
    query = run.embeddings(encoder, "test")
    return MethodCases(
        {f"fct-{change}/no-side": (query, run.transformed_gallery(0, target=encoder)),
         f"fct-{change}/side": (query, run.transformed_gallery(dim, target=encoder))}, encoder)


def fct_cross_architecture(run: Run) -> MethodCases:
    """FCT to a new model of another family (`cross.model`): h maps the old gallery into it."""
    return _fct_to(run, "arch")


def fct_cross_loss(run: Run) -> MethodCases:
    """FCT to a new model trained with another loss (normalized softmax)."""
    return _fct_to(run, "loss")


METHODS: dict[str, Callable[[Run], MethodCases]] = {
    "independent": independent,
    "bct": bct,
    "fct": fct,
    "fastfill": fastfill,
    "projection": projection,
    "dsimplex": dsimplex,
    "oca": oca,
    "fct-arch": fct_cross_architecture,
    "fct-loss": fct_cross_loss,
}

# (method, cross-model case, the retrieval it must beat): the compatibility criterion of each
# method in the methods table. d-Simplex is held to its own old model and to the suite's.
CRITERIA = (
    ("independent", "new/old", "old/old"),
    ("bct", "bct/old", "old/old"),
    ("oca", "oca/old", "old/old"),
    ("dsimplex", "dsimplex/old", "dsimplex-old/dsimplex-old"),
    ("dsimplex", "dsimplex/old", "old/old"),
)


def unpriced_methods(method_names) -> list[str]:
    """The methods whose new model differs from the independent one on purpose (FCT to another
    architecture or loss): the price table leaves them out."""
    return [name for name in method_names if name.startswith("fct-")]


def method_rows(run: Run, methods: dict[str, Callable[[Run], MethodCases]] | None = None,
                distances: tuple[str, ...] = DISTANCES) -> list[dict]:
    """Rows of the methods table for one run (metrics as fractions, all test queries), ordered by
    method, then case, then distance."""
    rows, own_top1 = [], {}
    for name, method in (methods or METHODS).items():
        result = method(run)
        for distance in distances:
            key = (result.own_encoder, distance)
            if key not in own_top1:
                own = run.embeddings(result.own_encoder, "test")
                own_top1[key] = run.evaluate(own, own, distance=distance)["all"]["top1"]
        for case, (query, gallery) in result.cases.items():
            for distance in distances:
                m = run.evaluate(query, gallery, distance=distance)["all"]
                rows.append({"method": name, "case": case, "distance": distance,
                             "top1": m["top1"], "top5": m["top5"], "mAP": m["mAP"],
                             "new_top1": own_top1[(result.own_encoder, distance)]})
    return rows
