"""Image figures of a data set: a grid of each class's images, and retrieval examples (a query
beside its nearest gallery images under each case)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from fctlib.data.images import ImageSet

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


def _show(ax, image: torch.Tensor):
    array = image.permute(1, 2, 0).numpy()
    ax.imshow(array[..., 0] if array.shape[2] == 1 else array, cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_class_grid(images: ImageSet, class_names: list[str], old_classes: list[int],
                    per_class: int = 6, max_classes: int = 20) -> plt.Figure:
    """A few images of each class (of at most `max_classes`, old and new classes in equal
    numbers, so a 100-class data set stays a readable, small figure); old classes marked."""
    import matplotlib.pyplot as plt

    present = sorted(set(images.labels.tolist()))
    old = [c for c in present if c in old_classes]
    new = [c for c in present if c not in old_classes]
    half = max_classes // 2
    classes = (sorted(old[:half] + new[:max_classes - min(half, len(old))])
               if len(present) > max_classes else present)
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.9),
                             squeeze=False)
    for row, c in zip(axes, classes, strict=True):
        idx = np.flatnonzero(images.labels == c)[:per_class]
        for ax, i in zip(row, idx, strict=False):
            _show(ax, images.image(int(i)))
        for ax in row[len(idx):]:
            ax.axis("off")
        tag = "old" if c in old_classes else "new"
        row[0].set_ylabel(f"{class_names[c]}\n({tag})", rotation=0, ha="right", va="center",
                          fontsize=7)
    return fig


def nearest(query: np.ndarray, gallery: np.ndarray, index: int, k: int) -> np.ndarray:
    """The k gallery indices nearest (L2) to query `index`, excluding the query's own sample."""
    d = ((gallery - query[index]) ** 2).sum(1)
    d[index] = np.inf
    return np.argsort(d, kind="stable")[:k]


def plot_retrievals(images: ImageSet, cases: dict[str, tuple[np.ndarray, np.ndarray]],
                    query_indices: list[int], class_names: list[str], k: int = 6) -> plt.Figure:
    """For each query, its k nearest gallery images under each case (green: same class)."""
    import matplotlib.pyplot as plt

    rows = [(q, name) for q in query_indices for name in cases]
    fig, axes = plt.subplots(len(rows), k + 1, figsize=((k + 1) * 0.95, len(rows) * 1.0),
                             squeeze=False)
    for row, (q, name) in zip(axes, rows, strict=True):
        query, gallery = cases[name]
        _show(row[0], images.image(q))
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
        row[0].set_title(class_names[images.labels[q]], fontsize=6)
        for ax, g in zip(row[1:], nearest(query, gallery, q, k), strict=True):
            _show(ax, images.image(int(g)))
            hit = images.labels[g] == images.labels[q]
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if hit else "red")
                spine.set_linewidth(2)
    fig.suptitle("query (left) and its nearest gallery items; green = same class", fontsize=8)
    return fig
