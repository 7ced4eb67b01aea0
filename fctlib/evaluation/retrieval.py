"""Exact retrieval metrics of the FCT evaluation protocol: CMC top-k and mAP over the full ranking.

Each query ranks the whole gallery by distance, ties broken by gallery index (lower first). Only the
ranks of the query's positives (gallery items of its label) are needed, and they are found without
sorting gallery rows: per block of queries, every distance is put in one of C equal-width cells
spanning the query's positive distances (a monotone map, so a lower cell means a lower distance).
The items of the cells holding a positive (candidates) are sorted by (distance, gallery index) per
query; a histogram of the cells counts the other items ranked before each candidate. The sorted
candidates list the positives in rank order, so each one's precision needs no further sort. With P
positives per query a cell holds about gallery/C items, so about P x (1 + gallery/C) candidates
are sorted per query; C = 4 sqrt(P x gallery), at most the gallery's size, balances that sort
against the O(C) counts.
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

# Distances held per block when block_size is None (20-30 bytes of work memory each). Blocks of 2^21
# ran as fast as 2^22 or faster on 2 cores at N = 5,000-50,000
# (results/benchmarks/exact-metrics-2026-12-06).
_BLOCK_DISTANCES = 2**21
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
    (None: as many as keep a block near 2M distances).
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
        first[a:b], precision_sum = _first_rank_and_precision_sum(
            dist, cols, valid, self_index[a:b], query_labels[a:b], gallery_labels, work
        )
        ap[a:b] = precision_sum / num_pos[a:b].clamp(min=1)
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


def _first_rank_and_precision_sum(dist, cols, valid, self_cols, query_labels, gallery_labels,
                                  work: _Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `dist`: the 1-based rank of its nearest positive and the sum over its positives
    of precision at each one's rank (ties by gallery index, the row's own sample self_cols[r] left
    out). Positives: gallery items cols[r, j] where valid[r, j], the items of the row's label."""
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
    marked = torch.zeros(n, work.num_cells + 3, dtype=torch.bool).scatter_(1, pos_cells, True)
    marked[:, dropped] = False
    # Candidates: the items of cells holding a positive (the positives included); a cell holds
    # candidates only or none. Items ranked before a candidate: the candidates before it in
    # (distance, gallery index) order, and every item of the cells below its own that hold none.
    is_candidate = torch.gather(marked.view(torch.uint8), 1, cell_ids, out=work.is_candidate[:n])
    outside = hist.masked_fill_(marked, 0)
    outside_before = torch.cumsum(outside, 1, dtype=torch.int32, out=work.cum[:n]).sub_(outside)
    cand_row, cand_col = torch.nonzero(is_candidate, as_tuple=True)  # ordered by (row, column)
    # Each row's candidates sorted by (distance, gallery index): a key of the order-preserving
    # int32 image of the float distance (+0.0 merges -0.0 into +0.0) above the column.
    bits = (dist[cand_row, cand_col] + 0.0).view(torch.int32)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    per_row = torch.bincount(cand_row, minlength=n)
    slot = torch.arange(len(cand_row)) - _exclusive_cumsum(per_row)[cand_row]
    keys = torch.full((n, int(per_row.max())), torch.iinfo(torch.int64).max)
    keys[cand_row, slot] = ordered * 2**32 + cand_col
    keys = keys.sort(1).values  # unique keys; the padding sorts last
    real = torch.arange(keys.shape[1]) < per_row.unsqueeze(1)
    col = (keys & 0xFFFFFFFF).masked_fill_(~real, 0)
    is_pos = (gallery_labels[col] == query_labels.unsqueeze(1)).logical_and_(real)
    # Positives in (row, rank) order: the k-th of a row has k positives ranked up to it.
    pos_row, place = torch.nonzero(is_pos, as_tuple=True)
    rank = outside_before[pos_row, cell_ids[pos_row, col[pos_row, place]]].to(torch.int64)
    rank += place + 1
    k = torch.arange(1, len(pos_row) + 1)
    k -= _exclusive_cumsum(torch.bincount(pos_row, minlength=n))[pos_row]
    first = torch.full((n,), num_g + 1, dtype=torch.int64)
    first[pos_row[k == 1]] = rank[k == 1]
    precision_sum = torch.zeros(n, dtype=torch.float64).index_add_(0, pos_row, k / rank.double())
    return first, precision_sum


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    """Each entry's sum of the entries before it."""
    return torch.cumsum(counts, 0) - counts
