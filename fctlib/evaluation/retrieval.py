"""Exact retrieval metrics of the FCT evaluation protocol: CMC top-k and mAP over the full ranking.

Each query ranks the whole gallery by distance, ties broken by gallery index (lower first). Only the
ranks of the query's positives (gallery items of its label) are needed, and they are found without
sorting gallery rows: per block of queries, every distance is put in one of C equal-width cells
spanning the query's positive distances (a monotone map, so a lower cell means a lower distance).
A histogram of the cells counts the items ranked before a positive's cell; the few items sharing a
cell with a positive are ordered exactly by (distance, gallery index). With P positives per query a
cell holds about gallery/C items, so about P x (1 + gallery/C) candidates are sorted per query;
C = 4 sqrt(P x gallery), at most the gallery's size, balances that sort against the O(C) counts.
Memory is O(block x gallery). Distances are float32 (inputs are converted): values equal in float32
tie.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch

from fctlib.evaluation.distances import DISTANCES
from fctlib.progress import progress

# Distances held per block when block_size is None (20-30 bytes of work memory each).
_BLOCK_DISTANCES = 2**22
# Squared norms above this could overflow float32 distances (|distance| <= 3 x max squared norm).
_MAX_SQUARED_NORM = 2.0**124
# Show a progress bar when a call computes more distances than this (several seconds on 2 cores).
_PROGRESS_DISTANCES = 4 * 10**8


def retrieval_metrics(
    query,
    gallery,
    query_labels,
    gallery_labels,
    *,
    exclude_self: bool = False,
    self_index=None,
    distance: str = "l2",
    topk: Iterable[int] = (1, 5),
    block_size: int | None = None,
) -> dict:
    """CMC top-k and mAP over the full ranking (fractions) of `gallery` for each query; a query
    without a positive in its gallery is skipped.

    self_index[i]: gallery index of query i's own sample, left out of its ranking (-1: none);
    exclude_self=True is shorthand for self_index=arange(Q). block_size: queries per block
    (None: as many as keep a block near 4M distances).
    """
    query, gallery, query_labels, gallery_labels, self_index, ks = _prepare(
        query, gallery, query_labels, gallery_labels, exclude_self, self_index, distance, topk,
        block_size,
    )
    first, ap, num_pos = _rank_queries(
        query, gallery, query_labels, gallery_labels, self_index, distance, block_size
    )
    return _summarise(first, ap, num_pos, ks, "retrieval_metrics")


def metrics_by_split(
    query,
    gallery,
    query_labels,
    gallery_labels,
    old_classes,
    *,
    exclude_self: bool = False,
    self_index=None,
    distance: str = "l2",
    topk: Iterable[int] = (1, 5),
    block_size: int | None = None,
) -> dict:
    """retrieval_metrics for the queries of all classes, of `old_classes` and of the other classes,
    as {"all", "old", "new"}; the gallery (and each query's self-exclusion) stays whole."""
    query, gallery, query_labels, gallery_labels, self_index, ks = _prepare(
        query, gallery, query_labels, gallery_labels, exclude_self, self_index, distance, topk,
        block_size,
    )
    is_old = torch.isin(query_labels, _class_ids(old_classes))
    first, ap, num_pos = _rank_queries(
        query, gallery, query_labels, gallery_labels, self_index, distance, block_size
    )
    subsets = {"all": torch.ones_like(is_old), "old": is_old, "new": ~is_old}
    return {
        name: _summarise(first[rows], ap[rows], num_pos[rows], ks, f"metrics_by_split[{name!r}]")
        for name, rows in subsets.items()
    }


def evaluate_case(
    query_embeddings, gallery_embeddings, labels, old_classes, *, distance: str = "l2"
) -> dict:
    """The suite's protocol for one case: query set = gallery set = the test split (same samples and
    order, two models), each query's own sample excluded; metrics_by_split's dict of fractions."""
    return metrics_by_split(
        query_embeddings, gallery_embeddings, labels, labels, old_classes,
        exclude_self=True, distance=distance,
    )


def _prepare(query, gallery, query_labels, gallery_labels, exclude_self, self_index, distance,
             topk, block_size):
    """Validate and convert the inputs: float32 embeddings, int64 labels and self indices, top-k."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")
    query = _embeddings(query, "query")
    gallery = _embeddings(gallery, "gallery")
    shapes = f"query shape {tuple(query.shape)}, gallery shape {tuple(gallery.shape)}"
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query and gallery embeddings differ in dimension ({shapes})")
    num_q, num_g = query.shape[0], gallery.shape[0]
    if num_g == 0:
        raise ValueError(f"the gallery is empty ({shapes})")
    query_labels = _integers(
        query_labels, "query_labels", num_q, f"query shape {tuple(query.shape)}"
    )
    gallery_labels = _integers(
        gallery_labels, "gallery_labels", num_g, f"gallery shape {tuple(gallery.shape)}"
    )
    if exclude_self:
        if self_index is not None:
            raise ValueError("pass either exclude_self=True or self_index, not both")
        if num_q != num_g:
            raise ValueError(
                "exclude_self=True needs query i and gallery i to be the same sample, so as many "
                f"queries as gallery items ({shapes}); pass self_index for a partial overlap"
            )
        self_index = torch.arange(num_q)
    elif self_index is None:
        self_index = torch.full((num_q,), -1, dtype=torch.int64)
    else:
        self_index = _integers(self_index, "self_index", num_q, f"query shape {tuple(query.shape)}")
        if num_q and (self_index.min() < -1 or self_index.max() >= num_g):
            raise ValueError(
                f"self_index must be -1 or a gallery index in [0, {num_g}) ({shapes}), got values "
                f"from {int(self_index.min())} to {int(self_index.max())}"
            )
    ks = tuple(topk) if isinstance(topk, Iterable) and not isinstance(topk, str) else ()
    if not ks or not all(_is_positive_int(k) for k in ks):
        raise ValueError(f"topk must be a non-empty sequence of positive integers, got {topk!r}")
    if block_size is not None and not _is_positive_int(block_size):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    for x, name in ((query, "query"), (gallery, "gallery")):
        norms = torch.linalg.vector_norm(x.double(), dim=1)
        if distance == "cosine" and bool((norms == 0).any()):
            bad = torch.nonzero(norms == 0).flatten()[:5].tolist()
            raise ValueError(f"cosine distance is undefined for zero vectors: {name} rows {bad}")
        if len(norms) and float(norms.max()) ** 2 > _MAX_SQUARED_NORM:
            raise ValueError(
                f"{name} embeddings are too large for float32 distances (largest norm "
                f"{float(norms.max()):.3g}); divide them by a constant"
            )
    return query, gallery, query_labels, gallery_labels, self_index, tuple(int(k) for k in ks)


def _is_positive_int(x) -> bool:
    """True for a Python or numpy integer >= 1 (bools excluded)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1


def _as_tensor(x) -> torch.Tensor:
    """A CPU tensor viewing or copying `x` (numpy array, torch tensor or nested sequence)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.as_tensor(np.asarray(x))


def _embeddings(x, name: str) -> torch.Tensor:
    """`x` as a contiguous float32 (num_items, dim) tensor of finite real numbers."""
    t = _as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.to(torch.float32).contiguous()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} (shape {tuple(t.shape)}) contains NaN or infinite values")
    return t


def _integers(x, name: str, length: int, against: str) -> torch.Tensor:
    """`x` as an int64 tensor of shape (length,)."""
    t = _as_tensor(x)
    if t.ndim != 1 or t.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},) to match {against}, "
                         f"got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.to(torch.int64)


def _class_ids(classes) -> torch.Tensor:
    """Class labels (any iterable of integers, a set included) as a 1-D int64 tensor."""
    if isinstance(classes, (set, frozenset)):
        classes = sorted(classes)
    t = _as_tensor(classes if isinstance(classes, (torch.Tensor, np.ndarray)) else list(classes))
    if t.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    if t.ndim != 1 or t.dtype.is_floating_point or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"old_classes must be a 1-D collection of integer labels, got shape "
                         f"{tuple(t.shape)} and dtype {t.dtype}")
    return t.to(torch.int64)


def _summarise(first, ap, num_pos, ks, what: str) -> dict:
    """Mean CMC top-k and mAP over the queries that have a positive; NaN and a warning if none."""
    evaluated = num_pos > 0
    n = int(evaluated.sum())
    if n == 0:
        warnings.warn(
            f"{what}: none of the {len(num_pos)} queries has a positive in its gallery; "
            "metrics are NaN",
            RuntimeWarning,
            stacklevel=3,
        )
    out = {}
    for k in ks:
        out[f"top{k}"] = float((first[evaluated] <= k).double().mean()) if n else math.nan
    out["mAP"] = float(ap[evaluated].mean()) if n else math.nan
    out["num_queries"] = n
    out["num_skipped"] = len(num_pos) - n
    return out


def _rank_queries(query, gallery, query_labels, gallery_labels, self_index, distance, block_size):
    """Per query: rank of its nearest positive, its average precision, its number of positives."""
    num_q, num_g = query.shape[0], gallery.shape[0]
    first = torch.zeros(num_q, dtype=torch.int64)
    ap = torch.zeros(num_q, dtype=torch.float64)
    num_pos = torch.zeros(num_q, dtype=torch.int64)
    if num_q == 0:
        return first, ap, num_pos
    if distance == "cosine":
        query = query / torch.linalg.vector_norm(query, dim=1, keepdim=True)
        gallery = gallery / torch.linalg.vector_norm(gallery, dim=1, keepdim=True)
    else:
        # ||q||^2 is constant along a row: leaving it out keeps the ranking and avoids cancellation.
        gallery_sq = gallery.square().sum(1).unsqueeze(0)
    by_label = torch.argsort(gallery_labels, stable=True)
    sorted_labels = gallery_labels[by_label]
    pos_start = torch.searchsorted(sorted_labels, query_labels)
    pos_count = torch.searchsorted(sorted_labels, query_labels, right=True) - pos_start
    rows = min(block_size or max(1, _BLOCK_DISTANCES // num_g), num_q)
    work = _Workspace(rows, num_g, int(pos_count.max()))
    starts = range(0, num_q, rows)
    for a in progress(starts, desc="retrieval metrics", unit="block", leave=False,
                  disable=num_q * num_g < _PROGRESS_DISTANCES):
        b = min(a + rows, num_q)
        count = pos_count[a:b]
        width = int(count.max())
        if width == 0:
            continue
        j = torch.arange(width)
        cols = by_label[(pos_start[a:b].unsqueeze(1) + j).clamp_(max=num_g - 1)]
        valid = (j < count.unsqueeze(1)) & (cols != self_index[a:b].unsqueeze(1))
        num_pos[a:b] = valid.sum(1)
        if not bool(valid.any()):
            continue
        dist = work.dist[: b - a]
        if distance == "cosine":
            torch.mm(query[a:b], gallery.T, out=dist).neg_()
        else:
            torch.addmm(gallery_sq, query[a:b], gallery.T, alpha=-2.0, out=dist)
        ranks = _positive_ranks(dist, cols, valid, self_index[a:b], work).sort(1).values
        n_pos = num_pos[a:b].unsqueeze(1)
        precision = (j + 1) / ranks.double()  # precision at the (j+1)-th positive
        ap[a:b] = precision.masked_fill_(j >= n_pos, 0.0).sum(1) / n_pos.squeeze(1).clamp(min=1)
        first[a:b] = ranks[:, 0]
    return first, ap, num_pos


class _Workspace:
    """Block-sized buffers reused across blocks (fresh large tensors cost a page fault per page),
    and the number of distance cells for queries with up to `max_positives` positives."""

    def __init__(self, rows: int, num_gallery: int, max_positives: int):
        cells = round(4 * math.sqrt(max_positives * num_gallery))
        self.num_cells = max(16, min(num_gallery, cells))
        self.dist = torch.empty(rows, num_gallery)
        self.cells = torch.empty(rows, num_gallery)
        self.cell_ids = torch.empty(rows, num_gallery, dtype=torch.int64)
        self.is_candidate = torch.empty(rows, num_gallery, dtype=torch.uint8)
        self.hist = torch.empty(rows, self.num_cells + 3, dtype=torch.int32)
        self.cum = torch.empty(rows, self.num_cells + 3, dtype=torch.int32)
        self.one = torch.ones(1, dtype=torch.int32)


def _positive_ranks(dist, cols, valid, self_cols, work: _Workspace) -> torch.Tensor:
    """1-based rank of gallery item cols[r, j] in row r of `dist` (ties by gallery index, the row's
    own sample self_cols[r] left out), for valid entries; num_gallery + 1 elsewhere."""
    n, num_g = dist.shape
    beyond = work.num_cells + 1  # cell of items ranked after the row's last positive
    dropped = work.num_cells + 2  # cell of the row's own sample, which no positive shares
    pos_dist = dist.gather(1, cols)
    has = valid.any(1)
    lo = torch.where(has, pos_dist.masked_fill(~valid, math.inf).amin(1), 0.0)
    hi = torch.where(has, pos_dist.masked_fill(~valid, -math.inf).amax(1), 0.0)
    # Cell = clamp(floor(dist * scale - shift), 0, beyond), positives about [1, num_cells]: any
    # monotone map is exact, these bounds only keep candidates few. The cap keeps lo * scale
    # finite; a single positive (hi == lo) gets cells a few ulps wide.
    scale = torch.where(hi > lo, (work.num_cells - 1) / (hi - lo), 2.0**20 / lo.abs())
    scale = torch.minimum(scale, 1e30 / lo.abs().clamp(min=1.0))
    shift = lo * scale - 1.0
    # Separate IEEE operations (never a fused multiply-add) keep the map identical for equal inputs.
    cells = torch.mul(dist, scale.unsqueeze(1), out=work.cells[:n])
    cells.sub_(shift.unsqueeze(1)).clamp_(0, beyond)
    cell_ids = work.cell_ids[:n].copy_(cells)  # truncation = floor for non-negative values
    has_self = torch.nonzero(self_cols >= 0).flatten()
    cell_ids[has_self, self_cols[has_self]] = dropped
    hist = work.hist[:n].zero_().scatter_add_(1, cell_ids, work.one.expand(n, num_g))
    pos_cells = cell_ids.gather(1, cols).masked_fill_(~valid, dropped)
    marked = torch.zeros(n, work.num_cells + 3, dtype=torch.uint8).scatter_(1, pos_cells, 1)
    marked[:, dropped] = 0
    # Candidates: items sharing a cell with a positive (the positives included).
    is_candidate = torch.gather(marked, 1, cell_ids, out=work.is_candidate[:n])
    cand_row, cand_col = torch.nonzero(is_candidate, as_tuple=True)  # ordered by (row, column)
    # Order candidates by (row, distance, column): an order-preserving int32 image of the float
    # distance (+0.0 merges -0.0 into +0.0), and a stable sort keeps the column order of ties.
    bits = (dist[cand_row, cand_col] + 0.0).view(torch.int32)
    key = (cand_row << 32) + (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    order = torch.sort(key, stable=True).indices
    group = (cand_row * (work.num_cells + 3) + cell_ids[cand_row, cand_col])[order]
    position = torch.arange(len(order))
    new_group = torch.ones(len(order), dtype=torch.bool)
    new_group[1:] = group[1:] != group[:-1]
    group_start = torch.where(new_group, position, 0).cummax(0).values
    ahead_in_cell = torch.empty_like(position)
    ahead_in_cell[order] = position - group_start
    # Each valid positive is a candidate: its place among them is the count of candidates up to it
    # in (row, column) order.
    count = torch.int32 if n * num_g < 2**31 else torch.int64
    where = torch.cumsum(is_candidate.view(-1), 0, dtype=count).view(n, num_g).gather(1, cols)
    where = where.to(torch.int64).sub_(1).clamp_(min=0)
    cum = torch.cumsum(hist, 1, dtype=torch.int32, out=work.cum[:n])
    before_cell = (cum.gather(1, pos_cells) - hist.gather(1, pos_cells)).to(torch.int64)
    ranks = 1 + before_cell + ahead_in_cell[where]
    return ranks.masked_fill_(~valid, num_g + 1)
