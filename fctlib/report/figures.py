"""Figures of the suite: training curves, image grids, retrieval examples, result charts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from fctlib.data.images import ImageSet
from fctlib.io import atomic_write


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
                    per_class: int = 6, max_classes: int = 20) -> plt.Figure:
    """A few images of each class (of at most `max_classes`, old and new classes in equal
    numbers, so a 100-class data set stays a readable, small figure); old classes marked."""
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


def plot_ablations(panels: dict[str, tuple[pd.DataFrame, str]]) -> plt.Figure:
    """One panel per ablation ({title: (table, setting column)}): FCT top-1 and mAP per setting
    (error bars: standard deviation over seeds, where the table has it)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, (table, column)) in zip(axes[0], panels.items(), strict=True):
        x = [f"{v:g}" if isinstance(v, float) else str(v) for v in table[column]]
        for m in ("top1", "mAP"):
            ax.errorbar(x, table[m], yerr=table.get(f"{m}_std"), marker="o", capsize=3, label=m)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(column.replace("_", " "))
        ax.set_ylabel("new query vs h(old) gallery (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_backfilling(points: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")
                     ) -> plt.Figure:
    """Backfilling curves (mean over seeds, band: standard deviation): retrieval against the share
    of the gallery re-embedded by the new model, one row of panels per side-info size."""
    dims = list(dict.fromkeys(points["side_info_dim"]))
    fig, axes = plt.subplots(len(dims), len(metrics), figsize=(5 * len(metrics), 3.2 * len(dims)),
                             squeeze=False)
    for row, dim in zip(axes, dims, strict=True):
        by_dim = points[points["side_info_dim"] == dim]
        for ax, m in zip(row, metrics, strict=True):
            for (name, order), curve in by_dim.groupby(["transformation", "order"], sort=False):
                curve = curve.sort_values("fraction")
                line, = ax.plot(curve["fraction"], curve[m], marker=".", label=f"{name} {order}")
                if f"{m}_std" in curve:
                    ax.fill_between(curve["fraction"], curve[m] - curve[f"{m}_std"],
                                    curve[m] + curve[f"{m}_std"], color=line.get_color(),
                                    alpha=0.15)
            ax.set_xlabel("share of the gallery backfilled")
            ax.set_ylabel(f"{m} (%)")
            ax.set_title(f"side-info {dim}-d" if dim else "no side-info", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_compatibility(matrices: pd.DataFrame, metric: str = "top1",
                       distance: str = "l2") -> plt.Figure:
    """One heatmap per method of its compatibility matrix under `distance` (query generation x
    gallery generation, mean over seeds, %), on one colour scale; the upper triangle is empty."""
    rows = matrices[(matrices["metric"] == metric) & (matrices["distance"] == distance)]
    methods = list(dict.fromkeys(rows["method"]))
    low, high = rows["mean"].min(), rows["mean"].max()
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.0), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        grid = rows[rows["method"] == method].pivot(index="query", columns="gallery",
                                                    values="mean")
        sns.heatmap(grid, ax=ax, annot=True, fmt=".1f", vmin=low, vmax=high, cmap="viridis",
                    cbar=ax is axes[0][-1], square=True, annot_kws={"fontsize": 8})
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("gallery generation")
        ax.set_ylabel("query generation")
    fig.suptitle(f"compatibility matrices ({metric}, {distance}, %)", fontsize=10)
    fig.tight_layout()
    return fig
