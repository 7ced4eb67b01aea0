"""Charts of the suite: training curves and the report's result charts (torch-free; the image
figures are in fctlib.data.preview); matplotlib is imported when a chart is drawn."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fctlib.io import atomic_write

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

GAP_LIMITS = (-0.5, 1.2)  # the gap-closed chart's axis: 0 = old/old, 1 = new/new


def save_figure(fig: plt.Figure, path: str | Path, *, palette: bool = False) -> Path:
    """Save a figure as PNG (atomically, 120 dpi); `palette`: 100 dpi and 256 colours, a third of
    the bytes for line and bar charts."""
    if not palette:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight",
                                                          format="png"))
    png = palette_png(fig)
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))


def palette_png(fig: plt.Figure, dpi: int = 100) -> bytes:
    """The figure as a PNG of 256 colours at `dpi`."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
    image = Image.open(buffer).convert("RGB").quantize(colors=256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class Chart:
    """A chart (lines, bars) shown in a notebook as a 256-colour PNG, as the report embeds its
    charts (`palette_png`): a third of a full-colour PNG's bytes. Rendered once; the figure is
    closed."""

    def __init__(self, fig: plt.Figure):
        import matplotlib.pyplot as plt

        self.png = palette_png(fig)
        plt.close(fig)

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<Chart, {len(self.png):,} bytes of PNG>"


class Photo:
    """A figure of images (a class grid, retrieval examples) shown in a notebook as JPEG: at
    quality 85, 0.41 of a PNG's bytes for Fashion-MNIST's class grid and 0.24 for Tiny-ImageNet's
    (the committed executed notebooks travel to a GPU machine with every call). Rendered once at
    `dpi`; the figure is closed."""

    def __init__(self, fig: plt.Figure, *, dpi: int = 100, quality: int = 85):
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="jpeg",
                    pil_kwargs={"quality": quality, "optimize": True})
        plt.close(fig)
        self.jpeg = buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the JPEG to `path` (`.jpg`), atomically; a PNG of the same name (the figure's
        earlier form, which notebook 05 wrote before) is removed, so a results folder holds one."""
        path = Path(path)
        atomic_write(path, lambda tmp: tmp.write_bytes(self.jpeg))
        path.with_suffix(".png").unlink(missing_ok=True)
        return path

    def _repr_jpeg_(self) -> bytes:
        return self.jpeg

    def __repr__(self) -> str:
        return f"<Photo, {len(self.jpeg):,} bytes of JPEG>"


def plot_histories(histories: dict[str, list[dict]], key: str = "loss") -> plt.Figure:
    """One training curve per named history (epoch on x)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h[key] for h in history], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training {key}")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_cases(table: pd.DataFrame, metrics: tuple[str, ...] = ("top1", "mAP")) -> plt.Figure:
    """Bars of each case's metrics (mean over seeds, error bars: standard deviation)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.bar(table["case"], table[m], yerr=table.get(f"{m}_std"), capsize=3,
               color=plt.cm.tab10(np.arange(len(table))))
        ax.set_ylabel(f"{m} (%)")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_gap_closed(ours: pd.DataFrame, published: dict[str, pd.DataFrame] | None = None,
                    limits: tuple[float, float] = GAP_LIMITS) -> plt.Figure:
    """Share of the old-to-new gap each case closes: ours, and each published run where given.
    The axis spans `limits`; a bar beyond them is cut at the edge, hatched, and labelled with its
    value, so one far-off case does not flatten the others; a case without a share (the gap too
    small or reversed) has no bar but the reason."""
    import matplotlib.pyplot as plt

    frames = {"ours": ours, **(published or {})}
    cases = list(ours["case"])
    bars = [(label, m) for label in frames for m in ("top1", "mAP")]
    width = 0.8 / len(bars)
    low, high = limits
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, (label, m) in enumerate(bars):
        cells = frames[label].set_index("case")[f"{m}_gap_closed"].reindex(cases)
        values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        x = np.arange(len(cases)) + i * width
        clipped = np.clip(values, low, high)
        ax.bar(x, clipped, width, label=f"{label} {m}")
        for xi, cell, value, shown in zip(x, cells, values, clipped, strict=True):
            if isinstance(cell, str):  # why there is no share: the gap is too small, reversed
                ax.annotate(cell, (xi, 0), ha="center", va="bottom", fontsize=6.5, rotation=90)
            elif np.isfinite(value) and value != shown:
                ax.bar(xi, shown, width, fill=False, hatch="///", edgecolor="black", lw=0)
                ax.annotate(f"{value:.2f}", (xi, shown), ha="center", fontsize=7.5,
                            va="bottom" if shown > 0 else "top", rotation=90)
    ax.set_ylim(low - 0.35, high + 0.1)
    ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2, cases, rotation=20)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel("share of old->new gap closed")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_cross_dataset(table: pd.DataFrame, distance: str, metric: str = "top1") -> plt.Figure:
    """Each case's `metric` for queries of data set A's classes and of B's (error bars: standard
    deviation over seeds, where the table has it), under `distance`."""
    import matplotlib.pyplot as plt

    chosen = table[table["distance"] == distance]
    cases = list(dict.fromkeys(chosen["case"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    x = np.arange(len(cases))
    for offset, (split, label) in zip((-0.2, 0.2), (("old", "A's classes (old model's data)"),
                                                    ("new", "B's classes (new data set)")),
                                      strict=True):
        rows = chosen[chosen["split"] == split].set_index("case").reindex(cases)
        ax.bar(x + offset, rows[metric], width=0.4, label=label,
               yerr=rows.get(f"{metric}_std"), capsize=2)
    ax.set_xticks(x, cases, rotation=20, fontsize=8)
    ax.set_ylabel(f"{metric} (%), {distance}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_side_info_size(table: pd.DataFrame) -> plt.Figure:
    """FCT accuracy against side-info size (0 = no side-info)."""
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

    rows = matrices[(matrices["metric"] == metric) & (matrices["distance"] == distance)]
    methods = list(dict.fromkeys(rows["method"]))
    low, high = rows["mean"].min(), rows["mean"].max()
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.0), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        grid = rows[rows["method"] == method].pivot(index="query", columns="gallery",
                                                    values="mean")
        image = ax.imshow(grid.to_numpy(dtype=float), vmin=low, vmax=high, cmap="viridis")
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if not np.isnan(value):  # the upper triangle: a gallery newer than the query
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if value > (low + high) / 2 else "white")
        ax.set_xticks(range(grid.shape[1]), grid.columns)
        ax.set_yticks(range(grid.shape[0]), grid.index)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("gallery generation")
        ax.set_ylabel("query generation")
    fig.colorbar(image, ax=axes[0][-1], fraction=0.046)
    fig.suptitle(f"compatibility matrices ({metric}, {distance}, %)", fontsize=10)
    fig.tight_layout()
    return fig
