"""The FCT paper's ablations on one run: how large side-info is, where it comes from, how much of
the training set fits h, and how wide h is. Each trains h again with one thing changed (side-info
of the preset's size otherwise) and evaluates new queries against its transformed test gallery."""

from __future__ import annotations

from fctlib.methods.fct import TransformationName, share_rows, transformed_gallery
from fctlib.suite.run import Run


def side_info_size_rows(run: Run) -> list[dict]:
    """One row per side-info size of the preset's sweep, and size 0 (no side-info), with
    metrics."""
    new = run.embeddings("new", "test")
    return [{"side_info_dim": dim,
             "metrics": run.evaluate(new, transformed_gallery(run, TransformationName(dim)))}
            for dim in (0, *run.preset.side_info.ablation_dims)]


def side_info_source_rows(run: Run) -> list[dict]:
    """One row per side-info source of the preset (`none`: FCT without side-info), with metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    rows = []
    for source in run.preset.ablation.side_info_sources:
        h = TransformationName(0) if source == "none" else TransformationName(dim, source)
        rows.append({"source": source, "side_info_dim": h.side_dim,
                     "metrics": run.evaluate(new, transformed_gallery(run, h))})
    return rows


def data_share_rows(run: Run) -> list[dict]:
    """One row per share of the training set fitting h (nested per-class subsets), with metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    return [{"data_share": share, "train_images": len(share_rows(run, share)),
             "metrics": run.evaluate(new, transformed_gallery(
                 run, TransformationName(dim, share=share)))}
            for share in run.preset.ablation.data_shares]


def width_rows(run: Run) -> list[dict]:
    """One row per width factor of h (all hidden layers scaled), with h's parameter count and
    metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    rows = []
    for factor in run.preset.ablation.width_factors:
        name = TransformationName(dim, width=factor)
        h, _ = run.trained(name)
        rows.append({"width_factor": factor, "parameters": sum(p.numel() for p in h.parameters()),
                     "metrics": run.evaluate(new, transformed_gallery(run, name))})
    return rows

