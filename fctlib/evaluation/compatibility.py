"""Compatibility across model generations: AC and AM of a compatibility matrix (numpy only)."""

from __future__ import annotations

import numpy as np


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
