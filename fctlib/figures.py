"""Figures of the suite: training curves, image grids, retrieval examples, result charts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .checkpoint import atomic_write
from .images import ImageSet


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save a figure as PNG (atomically, 120 dpi)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight",
                                                      format="png"))


def plot_histories(histories: dict[str, list[dict]], key: str = "loss") -> plt.Figure:
    """One training curve per named history (epoch on x)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h[key] for h in history], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training {key}")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _show(ax, image: torch.Tensor):
    array = image.permute(1, 2, 0).numpy()
    ax.imshow(array[..., 0] if array.shape[2] == 1 else array, cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_class_grid(images: ImageSet, class_names: list[str], old_classes: list[int],
                    per_class: int = 6) -> plt.Figure:
    """A few images of every class; old classes marked."""
    classes = sorted(set(images.labels.tolist()))
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


def plot_cases(table: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")) -> plt.Figure:
    """Bars of each case's metrics (mean over seeds, error bars: standard deviation)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.bar(table["case"], table[m], yerr=table.get(f"{m}_std"), capsize=3,
               color=plt.cm.tab10(np.arange(len(table))))
        ax.set_ylabel(f"{m} (%)")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_gap_closed(ours: pd.DataFrame, published: dict[str, pd.DataFrame] | None = None
                    ) -> plt.Figure:
    """Share of the old-to-new gap each case closes: ours, and each published run where given."""
    frames = {"ours": ours, **(published or {})}
    cases = list(ours["case"])
    bars = [(label, m) for label in frames for m in ("top1", "mAP")]
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, (label, m) in enumerate(bars):
        values = frames[label].set_index("case")[f"{m}_gap_closed"].reindex(cases)
        ax.bar(np.arange(len(cases)) + i * width, values, width, label=f"{label} {m}")
    ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2, cases, rotation=20)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel("share of old->new gap closed")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_side_info_size(table: pd.DataFrame) -> plt.Figure:
    """FCT accuracy against side-info size (0 = no side-info)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = [str(d) for d in table["side_info_dim"]]
    for m in ("top1", "mAP"):
        ax.errorbar(x, table[m], yerr=table.get(f"{m}_std"), marker="o", capsize=3, label=m)
    ax.set_xlabel("side-info size (0 = none)")
    ax.set_ylabel("fct/side (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
