"""Partial backfilling: re-embed a growing share of the gallery with the new model, in some order,
and measure retrieval at each share; the area under that curve summarises an order."""

from __future__ import annotations

import numpy as np
import torch

from fctlib.evaluation.distances import for_distance
from fctlib.evaluation.retrieval import evaluate_case
from fctlib.progress import progress

FRACTIONS = np.linspace(0.0, 1.0, 22)  # the published 22 equally spaced points


def random_order(n: int, seed: int) -> np.ndarray:
    """A random permutation of the gallery indices, reproducible from `seed`."""
    return np.random.default_rng(seed).permutation(n)


def uncertainty_order(sigma: np.ndarray) -> np.ndarray:
    """Gallery indices by decreasing sigma (the least certain first); ties by index."""
    return np.argsort(-np.asarray(sigma, dtype=np.float64), kind="stable")


def oracle_order(transformed: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Gallery indices by decreasing ||new - h(old)|| (the worst transformed first); ties by
    index. It needs the new embeddings of the whole gallery: an upper reference, not a method."""
    if transformed.shape != new.shape:
        raise ValueError(f"shapes differ: transformed {transformed.shape}, new {new.shape}")
    error = np.linalg.norm(new.astype(np.float64) - transformed.astype(np.float64), axis=1)
    return np.argsort(-error, kind="stable")


def backfilled_gallery(transformed: np.ndarray, new: np.ndarray, order: np.ndarray,
                       fraction: float) -> np.ndarray:
    """The gallery with its first round(fraction * N) items of `order` re-embedded by the new
    model, the others kept transformed."""
    if transformed.shape != new.shape:
        raise ValueError(f"shapes differ: transformed {transformed.shape}, new {new.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if not np.array_equal(np.sort(order), np.arange(len(new))):
        raise ValueError("order must be a permutation of the gallery indices")
    gallery = transformed.copy()
    chosen = np.asarray(order)[: backfilled_count(len(new), fraction)]
    gallery[chosen] = new[chosen]
    return gallery


def backfilled_count(n: int, fraction: float) -> int:
    """How many of `n` gallery items a backfilled `fraction` re-embeds (rounded to nearest)."""
    return int(np.rint(fraction * n))


def backfill_curve(query: np.ndarray, transformed: np.ndarray, new: np.ndarray,
                   order: np.ndarray, labels, old_classes, *, distance: str = "l2",
                   fractions=FRACTIONS, known: dict[int, dict] | None = None,
                   desc: str = "backfill") -> list[dict]:
    """Retrieval of `query` (new-model embeddings of the gallery's samples) against the gallery
    backfilled in `order` at each fraction: [{fraction, backfilled, metrics}], metrics as
    evaluate_case returns them. known: metrics already computed, by backfilled count (0: the
    transformed gallery, N: the new one, whatever the order), used instead of evaluating again."""
    points = []
    for fraction in progress(fractions, desc=desc, leave=False):
        count = backfilled_count(len(new), float(fraction))
        metrics = (known or {}).get(count)
        if metrics is None:
            gallery = backfilled_gallery(transformed, new, order, float(fraction))
            metrics = evaluate_case(query, gallery, labels, old_classes, distance=distance)
        points.append({"fraction": float(fraction), "backfilled": count, "metrics": metrics})
    return points


def nearest_items(query: np.ndarray, gallery: np.ndarray, *, distance: str = "l2",
                  block: int = 1024) -> np.ndarray:
    """Each query's nearest gallery item under `distance`, its own item excluded (query i is the
    sample of gallery item i, as in evaluate_case)."""
    q = torch.from_numpy(for_distance(np.asarray(query, np.float32), distance))
    g = torch.from_numpy(for_distance(np.asarray(gallery, np.float32), distance))
    nearest = []
    for start in range(0, len(q), block):
        d = torch.cdist(q[start:start + block], g)
        rows = torch.arange(len(d))
        d[rows, rows + start] = float("inf")
        nearest.append(d.argmin(1))
    return torch.cat(nearest).numpy() if nearest else np.zeros(0, np.int64)


def backfilled_top1_share(query: np.ndarray, transformed: np.ndarray, new: np.ndarray,
                          order: np.ndarray, fraction: float, *, distance: str = "l2") -> float:
    """The share of queries whose nearest gallery item is a backfilled one, with `fraction` of the
    gallery backfilled in `order`: far above `fraction`, the new embeddings crowd out the
    transformed ones (they win nearest-neighbour contests whatever their class)."""
    gallery = backfilled_gallery(transformed, new, order, fraction)
    backfilled = np.zeros(len(new), dtype=bool)
    backfilled[np.asarray(order)[: backfilled_count(len(new), fraction)]] = True
    return float(backfilled[nearest_items(query, gallery, distance=distance)].mean())


def fastfill_curves(new: np.ndarray, fastfill: np.ndarray, sigma: np.ndarray, fct: np.ndarray,
                    labels, old_classes, *, seed: int, distance: str = "l2") -> list[dict]:
    """The FastFill comparison on one gallery (queries = its new embeddings): FastFill's
    transformation in random, uncertainty and oracle order, FCT's in random order (the same
    random permutation) and in oracle order (does backfilling the worst-transformed items first
    help FCT's h?); [{transformation, order, points}]."""
    shuffled = random_order(len(new), seed)
    plan = [("fastfill", "random", fastfill, shuffled),
            ("fastfill", "uncertainty", fastfill, uncertainty_order(sigma)),
            ("fastfill", "oracle", fastfill, oracle_order(fastfill, new)),
            ("fct", "random", fct, shuffled),
            ("fct", "oracle", fct, oracle_order(fct, new))]
    # every curve of a transformation starts at its gallery and every curve ends at the new one:
    # those galleries are evaluated once
    new_new = evaluate_case(new, new, labels, old_classes, distance=distance)
    starts = {name: evaluate_case(new, gallery, labels, old_classes, distance=distance)
              for name, gallery in (("fastfill", fastfill), ("fct", fct))}
    return [{"transformation": name, "order": order,
             "points": backfill_curve(new, gallery, new, indices, labels, old_classes,
                                      distance=distance, known={0: starts[name], len(new): new_new},
                                      desc=f"backfill {name} {order}")}
            for name, order, gallery, indices in plan]
