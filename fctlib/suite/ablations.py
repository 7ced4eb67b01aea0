"""The FCT paper's ablations on one run: where side-info comes from, how much of the training set
fits h, and how wide h is. Each trains h again with one thing changed (side-info of the preset's
size otherwise) and evaluates new queries against its transformed test gallery."""

from __future__ import annotations

from fctlib.suite.run import Run


def side_info_source_rows(run: Run) -> list[dict]:
    """One row per side-info source of the preset (`none`: FCT without side-info), with metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    rows = []
    for source in run.preset.ablation.side_info_sources:
        gallery = (run.transformed_gallery(0) if source == "none"
                   else run.transformed_gallery(dim, source=source))
        rows.append({"source": source, "side_info_dim": 0 if source == "none" else dim,
                     "metrics": run.evaluate(new, gallery)})
    return rows


def data_share_rows(run: Run) -> list[dict]:
    """One row per share of the training set fitting h (nested per-class subsets), with metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    return [{"data_share": share, "train_images": len(run.share_rows(share)),
             "metrics": run.evaluate(new, run.transformed_gallery(dim, data_share=share))}
            for share in run.preset.ablation.data_shares]


def width_rows(run: Run) -> list[dict]:
    """One row per width factor of h (all hidden layers scaled), with h's parameter count and
    metrics."""
    dim = run.preset.side_info.model.embedding_dim
    new = run.embeddings("new", "test")
    rows = []
    for factor in run.preset.ablation.width_factors:
        h, _ = run.transformation(dim, width_factor=factor)
        gallery = run.transformed_gallery(dim, width_factor=factor)
        rows.append({"width_factor": factor, "parameters": sum(p.numel() for p in h.parameters()),
                     "metrics": run.evaluate(new, gallery)})
    return rows

