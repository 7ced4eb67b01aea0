"""The distances retrieval is measured and served under (numpy only, torch-free)."""

from __future__ import annotations

import numpy as np

DISTANCES = ("l2", "cosine")  # cosine: L2-normalise, then inner product (or L2 on unit vectors)


def for_distance(x: np.ndarray, distance: str) -> np.ndarray:
    """`x` as contiguous float32 rows, L2-normalised under `cosine` (zero rows stay zero)."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if distance == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x
