"""Tests of fctlib.evaluation.retrieval against a brute-force implementation written from the
definitions.

Embeddings hold small integers, so float32 and float64 distances agree exactly and ties are real.
"""

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from fctlib.evaluation.retrieval import evaluate_case, metrics_by_split, retrieval_metrics

METRIC_KEYS = ("top1", "top5", "mAP")


def brute_force(query, gallery, query_labels, gallery_labels, self_index=None, distance="l2",
                topk=(1, 5), tie_order=1):
    """Textbook CMC top-k and mAP: float64 distances, the full sorted ranking of the gallery, ties
    by gallery index (tie_order=-1: reversed index), query i's own sample self_index[i] left out."""
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    if self_index is None:
        self_index = [-1] * len(q)
    hits = {k: 0 for k in topk}
    aps = []
    for i in range(len(q)):
        if distance == "l2":
            dist = ((g - q[i]) ** 2).sum(axis=1)
        else:
            dist = -(g @ q[i]) / (np.linalg.norm(g, axis=1) * np.linalg.norm(q[i]))
        ranking = sorted(
            (j for j in range(len(g)) if j != self_index[i]), key=lambda j: (dist[j], tie_order * j)
        )
        relevant = [gallery_labels[j] == query_labels[i] for j in ranking]
        if not any(relevant):
            continue
        for k in topk:
            hits[k] += any(relevant[:k])
        precisions = []
        for rank, is_positive in enumerate(relevant, start=1):
            if is_positive:
                precisions.append((len(precisions) + 1) / rank)
        aps.append(sum(precisions) / len(precisions))
    n = len(aps)
    out = {f"top{k}": hits[k] / n if n else math.nan for k in topk}
    out["mAP"] = sum(aps) / n if n else math.nan
    out["num_queries"] = n
    out["num_skipped"] = len(q) - n
    return out


def assert_same(ours, ref):
    """Equal keys, equal counts, metric values equal up to float64 summation order."""
    assert list(ours) == list(ref)
    for key, value in ref.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def integer_embeddings(rng, n, dim, spread):
    """Integer-valued float32 vectors in [-spread, spread]."""
    return rng.integers(-spread, spread + 1, size=(n, dim)).astype(np.float32)


def dyadic_embeddings(rng, n, dim, spread):
    """Integer vectors whose norm is a power of two: their cosines are exact in float32 and float64,
    so both precisions rank them alike, real ties included."""
    found = []
    while sum(map(len, found)) < n:
        x = integer_embeddings(rng, max(4 * n, 20_000), dim, spread)
        norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=1))
        found.append(x[(norm > 0) & (np.log2(np.maximum(norm, 1)) % 1 == 0)])
    return np.concatenate(found)[:n]


def paired_case(seed, n=120, dim=3, spread=2, classes=6):
    """Query and gallery embeddings of the same n samples (two 'models'), with labels."""
    rng = np.random.default_rng(seed)
    gallery = integer_embeddings(rng, n, dim, spread)
    query = gallery + rng.integers(-1, 2, size=(n, dim)).astype(np.float32)
    labels = rng.integers(0, classes, size=n)
    return query, gallery, labels


def test_hand_computed_example():
    gallery = np.array([[1.0], [2.0], [3.0], [4.0]])
    gallery_labels = np.array([0, 1, 0, 1])
    query = np.zeros((2, 1))
    # Query 0 (label 0): positives at ranks 1 and 3, AP = (1/1 + 2/3) / 2 = 5/6, top-1 hit.
    # Query 1 (label 1): positives at ranks 2 and 4, AP = (1/2 + 2/4) / 2 = 1/2, top-1 miss.
    out = retrieval_metrics(query, gallery, np.array([0, 1]), gallery_labels, topk=(1, 2, 5))
    assert out == pytest.approx(
        {"top1": 0.5, "top2": 1.0, "top5": 1.0, "mAP": (5 / 6 + 1 / 2) / 2,
         "num_queries": 2, "num_skipped": 0}
    )
    # A tie at distance 1: gallery 0 (label 1) ranks before gallery 1 (label 0).
    tied = np.array([[1.0], [-1.0], [3.0]])
    out = retrieval_metrics(np.zeros((1, 1)), tied, np.array([0]), np.array([1, 0, 0]))
    assert out["top1"] == 0.0
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)


@pytest.mark.parametrize("seed", range(4))
def test_self_excluded_matches_brute_force(seed):
    query, gallery, labels = paired_case(seed)
    ours = retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
    ref = brute_force(query, gallery, labels, labels, self_index=np.arange(len(labels)))
    assert_same(ours, ref)
    # The self-exclusion matters here: keeping each query's own sample changes the metrics.
    assert brute_force(query, gallery, labels, labels) != ref


@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_spread_out_values_match_brute_force(distance):
    # Wide integer range: few ties, many distinct cells in the bucketing.
    rng = np.random.default_rng(7)
    if distance == "l2":
        gallery = integer_embeddings(rng, 300, 16, 60)
        query = gallery + integer_embeddings(rng, 300, 16, 20)
    else:
        gallery = dyadic_embeddings(rng, 300, 8, 8)
        query = dyadic_embeddings(rng, 300, 8, 8)
    labels = rng.integers(0, 5, size=300)
    ours = retrieval_metrics(query, gallery, labels, labels, exclude_self=True, distance=distance)
    assert_same(ours, brute_force(query, gallery, labels, labels, np.arange(300), distance))


@pytest.mark.parametrize("classes", [2, 100])
def test_cell_counts_match_brute_force(classes):
    # 800 items: with 2 classes (400 positives a query) there are as many distance cells as items;
    # with 100 classes (about 8 positives) far fewer, so many items share a positive's cell.
    rng = np.random.default_rng(classes)
    gallery = integer_embeddings(rng, 800, 4, 1000)
    query = gallery + integer_embeddings(rng, 800, 4, 300)
    labels = rng.integers(0, classes, size=800)
    ours = retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
    assert_same(ours, brute_force(query, gallery, labels, labels, np.arange(800)))


def test_disjoint_query_and_gallery_match_brute_force():
    rng = np.random.default_rng(1)
    gallery = integer_embeddings(rng, 150, 4, 3)
    query = integer_embeddings(rng, 50, 4, 3)
    gallery_labels = rng.integers(0, 5, size=150)
    query_labels = rng.integers(0, 6, size=50)  # label 5 has no gallery item: skipped
    ours = retrieval_metrics(query, gallery, query_labels, gallery_labels, topk=(1, 3, 10))
    ref = brute_force(query, gallery, query_labels, gallery_labels, topk=(1, 3, 10))
    assert_same(ours, ref)
    assert ours["num_skipped"] == int((query_labels == 5).sum()) > 0


def test_cosine_matches_brute_force_with_exact_ties():
    rng = np.random.default_rng(3)
    base = dyadic_embeddings(rng, 40, 4, 4)
    # Copies and doubled copies point the same way: exact cosine ties, resolved by index.
    gallery = np.concatenate([base, base[:10], 2 * base[10:20]])
    gallery_labels = rng.integers(0, 4, size=len(gallery))
    query = dyadic_embeddings(rng, 30, 4, 4)
    query_labels = rng.integers(0, 4, size=len(query))
    ours = retrieval_metrics(query, gallery, query_labels, gallery_labels, distance="cosine")
    ref = brute_force(query, gallery, query_labels, gallery_labels, distance="cosine")
    assert_same(ours, ref)
    reversed_ties = brute_force(query, gallery, query_labels, gallery_labels, distance="cosine",
                                tie_order=-1)
    assert reversed_ties["mAP"] != pytest.approx(ref["mAP"])  # the data has deciding ties
    # Cosine ranks differently from L2 on these vectors.
    assert ours != retrieval_metrics(query, gallery, query_labels, gallery_labels)


def test_cosine_orthogonal_ties_use_index():
    query = np.array([[-1.0, 0.0]])
    gallery = np.array([[0.0, -1.0], [0.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
    labels = np.array([1, 0, 1, 0])
    ours = retrieval_metrics(query, gallery, np.array([0]), labels, distance="cosine")
    assert_same(ours, brute_force(query, gallery, [0], labels, distance="cosine"))
    assert ours["top1"] == 0.0  # gallery 0 (label 1) wins the three-way tie at cosine 0


def test_queries_without_positive_are_skipped():
    query, gallery, labels = paired_case(11, n=60)
    labels = labels.copy()
    labels[5] = 40  # its only positive is itself, which is excluded
    query_labels = labels.copy()
    query_labels[9] = 41  # no gallery item of this label at all
    ours = retrieval_metrics(query, gallery, query_labels, labels, exclude_self=True)
    ref = brute_force(query, gallery, query_labels, labels, self_index=np.arange(60))
    assert_same(ours, ref)
    assert ours["num_skipped"] == 2 and ours["num_queries"] == 58


def test_all_skipped_gives_nan_and_warning():
    rng = np.random.default_rng(0)
    gallery = integer_embeddings(rng, 20, 3, 2)
    with pytest.warns(RuntimeWarning, match="none of the 5 queries has a positive"):
        out = retrieval_metrics(gallery[:5], gallery, np.full(5, 7), np.zeros(20, dtype=int))
    assert all(math.isnan(out[k]) for k in METRIC_KEYS)
    assert out["num_queries"] == 0 and out["num_skipped"] == 5


def test_single_query():
    rng = np.random.default_rng(5)
    gallery = integer_embeddings(rng, 30, 3, 2)
    labels = rng.integers(0, 3, size=30)
    query = integer_embeddings(rng, 1, 3, 2)
    ours = retrieval_metrics(query, gallery, [labels[0]], labels)
    assert_same(ours, brute_force(query, gallery, [labels[0]], labels))
    assert ours["num_queries"] == 1


def test_ties_are_broken_by_gallery_index():
    rng = np.random.default_rng(2)
    base = integer_embeddings(rng, 25, 2, 2)
    gallery = np.concatenate([base, base, base])  # each vector three times
    gallery_labels = rng.integers(0, 3, size=75)
    query = integer_embeddings(rng, 20, 2, 2)
    query_labels = rng.integers(0, 3, size=20)
    by_index = brute_force(query, gallery, query_labels, gallery_labels)
    by_reversed_index = brute_force(query, gallery, query_labels, gallery_labels, tie_order=-1)
    assert by_index["mAP"] != pytest.approx(by_reversed_index["mAP"])  # the tie-break matters
    assert_same(retrieval_metrics(query, gallery, query_labels, gallery_labels), by_index)


def test_all_distances_tied_rank_by_index():
    gallery = np.ones((200, 4))
    labels = np.arange(200) % 7
    ours = retrieval_metrics(gallery, gallery, labels, labels, exclude_self=True, block_size=16)
    assert_same(ours, brute_force(gallery, gallery, labels, labels, self_index=np.arange(200)))


def test_exclusion_is_by_index_not_by_vector():
    # Samples 0 and 1 are identical with the same label: each stays the other's top-1 positive.
    rng = np.random.default_rng(4)
    gallery = integer_embeddings(rng, 30, 3, 5)
    gallery[1] = gallery[0]
    labels = rng.integers(0, 3, size=30)
    labels[1] = labels[0]
    ours = retrieval_metrics(gallery, gallery, labels, labels, exclude_self=True)
    assert_same(ours, brute_force(gallery, gallery, labels, labels, self_index=np.arange(30)))
    first_two = retrieval_metrics(gallery[:2], gallery, labels[:2], labels, self_index=[0, 1])
    assert first_two["top1"] == 1.0


def test_block_sizes_agree():
    query, gallery, labels = paired_case(8, n=90)
    results = [
        retrieval_metrics(query, gallery, labels, labels, exclude_self=True, block_size=b)
        for b in (1, 3, 7, 1000, None)
    ]
    assert all(r == results[0] for r in results[1:])
    assert_same(results[0], brute_force(query, gallery, labels, labels, np.arange(90)))


def test_self_index_with_partial_overlap():
    rng = np.random.default_rng(6)
    gallery = integer_embeddings(rng, 80, 3, 2)
    labels = rng.integers(0, 4, size=80)
    own = np.array([3, 10, -1, 42, -1, 79, 0])
    query = np.where(own[:, None] >= 0, gallery[own], integer_embeddings(rng, 7, 3, 2))
    query_labels = np.where(own >= 0, labels[own], rng.integers(0, 4, size=7))
    ours = retrieval_metrics(query, gallery, query_labels, labels, self_index=own)
    assert_same(ours, brute_force(query, gallery, query_labels, labels, self_index=own))


def test_metrics_by_split_keeps_self_exclusion():
    query, gallery, labels = paired_case(9, n=100, classes=6)
    old_classes = [0, 1, 2]
    ours = metrics_by_split(query, gallery, labels, labels, old_classes, exclude_self=True)
    assert list(ours) == ["all", "old", "new"]
    is_old = np.isin(labels, old_classes)
    for name, rows in {"all": np.ones(100, bool), "old": is_old, "new": ~is_old}.items():
        idx = np.flatnonzero(rows)
        ref = brute_force(query[idx], gallery, labels[idx], labels, self_index=idx)
        assert_same(ours[name], ref)
        # Subset queries ranked against the whole gallery with their own sample kept differ.
        assert brute_force(query[idx], gallery, labels[idx], labels) != ref
    assert ours["all"] == retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
    assert ours["old"]["num_queries"] + ours["new"]["num_queries"] == ours["all"]["num_queries"]


def test_metrics_by_split_with_an_empty_split_warns():
    query, gallery, labels = paired_case(10, n=40, classes=3)
    with pytest.warns(RuntimeWarning, match=r"metrics_by_split\['new'\]"):
        out = metrics_by_split(query, gallery, labels, labels, {0, 1, 2}, exclude_self=True)
    assert math.isnan(out["new"]["mAP"]) and out["old"] == out["all"]


def test_evaluate_case_is_the_protocol():
    query, gallery, labels = paired_case(12, n=80)
    out = evaluate_case(torch.from_numpy(query), torch.from_numpy(gallery), labels, range(3))
    assert out == metrics_by_split(query, gallery, labels, labels, [0, 1, 2], exclude_self=True)
    assert_same(out["all"], brute_force(query, gallery, labels, labels, np.arange(80)))
    rng = np.random.default_rng(12)
    query, gallery = dyadic_embeddings(rng, 80, 4, 4), dyadic_embeddings(rng, 80, 4, 4)
    cosine = evaluate_case(query, gallery, labels, [0, 1, 2], distance="cosine")
    ref = brute_force(query, gallery, labels, labels, np.arange(80), "cosine")
    assert_same(cosine["all"], ref)


def test_numpy_and_torch_inputs_agree():
    query, gallery, labels = paired_case(13, n=50)
    expected = retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
    variants = [
        (torch.from_numpy(query), torch.from_numpy(gallery), torch.from_numpy(labels)),
        (query.astype(np.int64), gallery.astype(np.float64), labels.astype(np.int16)),
        (torch.from_numpy(query).double(), gallery.tolist(), torch.from_numpy(labels).int()),
    ]
    for q, g, lab in variants:
        assert retrieval_metrics(q, g, lab, lab, exclude_self=True) == expected
    assert_same(expected, brute_force(query, gallery, labels, labels, np.arange(50)))


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    n_gallery = int(rng.integers(1, 160))
    dim = int(rng.integers(1, 6))
    spread = int(rng.integers(1, 30))
    classes = int(rng.integers(1, 10))
    distance = ["l2", "cosine"][seed % 2]
    embeddings = integer_embeddings if distance == "l2" else dyadic_embeddings
    gallery = embeddings(rng, n_gallery, dim, spread)
    gallery_labels = rng.integers(0, classes, size=n_gallery)
    if seed < 3:  # paired: query i and gallery i are the same sample, seen by two models
        query = embeddings(rng, n_gallery, dim, spread)
        query_labels, self_index = gallery_labels, np.arange(n_gallery)
    else:
        query = embeddings(rng, int(rng.integers(1, 60)), dim, spread)
        query_labels, self_index = rng.integers(0, classes, size=len(query)), None
    block = int(rng.integers(1, 40))
    ref = brute_force(query, gallery, query_labels, gallery_labels, self_index, distance)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = retrieval_metrics(query, gallery, query_labels, gallery_labels,
                                 self_index=self_index, distance=distance, block_size=block)
    assert_same(ours, ref)
    # A warning exactly when every query is skipped.
    assert [w.category for w in caught] == ([RuntimeWarning] if ref["num_queries"] == 0 else [])


Q3 = np.zeros((4, 3))
G3 = np.ones((6, 3))
L4 = np.zeros(4, dtype=int)
L6 = np.zeros(6, dtype=int)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros(5), G3, np.zeros(5, int), L6), {}, r"query must be 2-D .* shape \(5,\)"),
        ((Q3, np.ones((6, 2)), L4, L6), {}, r"dimension .*\(4, 3\).*\(6, 2\)"),
        ((Q3, G3, L4[:3], L6), {}, r"query_labels must have shape \(4,\) .* got shape \(3,\)"),
        ((Q3, G3, L4, np.zeros((6, 1), int)), {}, r"gallery_labels must have shape \(6,\)"),
        ((Q3, G3, L4 + 0.5, L6), {}, r"query_labels must hold integers"),
        ((Q3, G3, L4, L6), {"distance": "cosinus"}, r"unknown distance 'cosinus'"),
        ((Q3, G3, L4, L6), {"exclude_self": True}, r"exclude_self=True .*\(4, 3\).*\(6, 3\)"),
        ((Q3, G3, L4, L6), {"self_index": [0, 1, 2, 6]}, r"self_index must be -1 or .*\[0, 6\)"),
        ((Q3, G3, L4, L6), {"self_index": [0, 1]}, r"self_index must have shape \(4,\)"),
        ((G3, G3, L6, L6), {"exclude_self": True, "self_index": np.arange(6)}, r"not both"),
        ((Q3 + np.nan, G3, L4, L6), {}, r"query .* NaN"),
        ((Q3, G3, L4, L6), {"distance": "cosine"}, r"zero vectors: query rows \[0, 1, 2, 3\]"),
        ((Q3, G3 * 1e20, L4, L6), {}, r"gallery embeddings are too large"),
        ((Q3, G3, L4, L6), {"topk": (1, 0)}, r"topk must be a non-empty sequence of positive"),
        ((Q3, G3, L4, L6), {"topk": 5}, r"topk must be a non-empty sequence .* got 5"),
        ((Q3, G3, L4, L6), {"block_size": 0}, r"block_size must be a positive integer"),
        ((Q3, np.ones((0, 3)), L4, L6[:0]), {}, r"gallery is empty"),
    ],
)
def test_invalid_input_raises(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(*args, **kwargs)


def test_invalid_old_classes_raise():
    with pytest.raises(ValueError, match="old_classes must be a 1-D collection of integer"):
        metrics_by_split(G3, G3, L6, L6, [0.5, 1.5], exclude_self=True)


def test_does_not_import_faiss():
    code = ("import sys, fctlib.evaluation.retrieval; "
            "print(any(m.startswith('faiss') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
