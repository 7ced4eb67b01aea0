import numpy as np
import pytest

from fctlib.evaluation.backfill import (
    FRACTIONS,
    backfill_curve,
    backfilled_count,
    backfilled_gallery,
    backfilled_top1_share,
    fastfill_curves,
    nearest_items,
    oracle_order,
    random_order,
    uncertainty_order,
)
from fctlib.evaluation.distances import for_distance
from fctlib.evaluation.retrieval import evaluate_case
from fctlib.report.backfilling import area_under_curve

OLD_CLASSES = [0, 1]


def _brute_force(query, gallery, labels):
    """top-1, top-5 and mAP by sorting every gallery row (own sample left out, ties by index)."""
    top1, top5, aps = [], [], []
    for i in range(len(query)):
        d = ((gallery.astype(np.float64) - query[i]) ** 2).sum(1)
        ranked = [j for j in np.lexsort((np.arange(len(d)), d)) if j != i]
        hits = np.array([labels[j] == labels[i] for j in ranked])
        if not hits.any():
            continue
        top1.append(hits[:1].any())
        top5.append(hits[:5].any())
        positions = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(positions) + 1) / positions))
    return {"top1": np.mean(top1), "top5": np.mean(top5), "mAP": np.mean(aps)}


def _gallery(n=60, dim=6, seed=0):
    """new = class centre + small noise; transformed = new + noise whose size varies by item."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    centres = rng.normal(size=(4, dim)) * 3
    new = (centres[labels] + rng.normal(size=(n, dim)) * 0.5).astype(np.float32)
    scale = rng.uniform(0.1, 4.0, n)
    transformed = (new + rng.normal(size=(n, dim)) * scale[:, None]).astype(np.float32)
    return new, transformed, labels, scale


def test_published_grid():
    assert len(FRACTIONS) == 22 and FRACTIONS[0] == 0 and FRACTIONS[-1] == 1
    assert np.allclose(np.diff(FRACTIONS), 1 / 21)


def test_orders():
    sigma = np.array([0.5, 2.0, -1.0, 2.0, 0.7])
    assert uncertainty_order(sigma).tolist() == [1, 3, 4, 0, 2]  # highest first, ties by index
    new = np.zeros((4, 2), np.float32)
    transformed = np.array([[1, 0], [0, 3], [0, 0], [2, 0]], np.float32)
    assert oracle_order(transformed, new).tolist() == [1, 3, 0, 2]  # largest error first
    perm = random_order(50, seed=3)
    assert sorted(perm.tolist()) == list(range(50))
    assert np.array_equal(perm, random_order(50, seed=3))
    assert not np.array_equal(perm, random_order(50, seed=4))


def test_backfilled_gallery_replaces_the_first_items_of_the_order():
    new, transformed, _, _ = _gallery(n=10)
    order = np.array([7, 2, 9, 0, 1, 3, 4, 5, 6, 8])
    gallery = backfilled_gallery(transformed, new, order, 0.3)
    assert backfilled_count(10, 0.3) == 3
    replaced = [7, 2, 9]
    assert np.array_equal(gallery[replaced], new[replaced])
    kept = [i for i in range(10) if i not in replaced]
    assert np.array_equal(gallery[kept], transformed[kept])
    assert np.array_equal(backfilled_gallery(transformed, new, order, 0.0), transformed)
    assert np.array_equal(backfilled_gallery(transformed, new, order, 1.0), new)
    with pytest.raises(ValueError, match="permutation"):
        backfilled_gallery(transformed, new, np.zeros(10, int), 0.5)
    with pytest.raises(ValueError, match="fraction"):
        backfilled_gallery(transformed, new, order, 1.5)


def test_curve_endpoints_and_a_middle_point_against_brute_force():
    new, transformed, labels, _ = _gallery()
    order = random_order(len(new), seed=0)
    points = backfill_curve(new, transformed, new, order, labels, OLD_CLASSES,
                            fractions=[0.0, 0.5, 1.0])
    assert [p["backfilled"] for p in points] == [0, 30, 60]
    middle = transformed.copy()
    middle[order[:30]] = new[order[:30]]
    for point, gallery in zip(points, (transformed, middle, new), strict=True):
        expected = _brute_force(new, gallery, labels)
        for metric, value in expected.items():
            assert point["metrics"]["all"][metric] == pytest.approx(value), metric
    assert points[0]["metrics"] == evaluate_case(new, transformed, labels, OLD_CLASSES)
    assert points[-1]["metrics"] == evaluate_case(new, new, labels, OLD_CLASSES)


def test_fastfill_curves_and_the_oracle_beating_random():
    new, transformed, labels, scale = _gallery(n=120)
    fct = transformed[::-1].copy()  # any other gallery of the same shape
    curves = fastfill_curves(new, transformed, scale, fct, labels, OLD_CLASSES, seed=1)
    assert [(c["transformation"], c["order"]) for c in curves] == [
        ("fastfill", "random"), ("fastfill", "uncertainty"), ("fastfill", "oracle"),
        ("fct", "random"), ("fct", "oracle")]
    new_new = evaluate_case(new, new, labels, OLD_CLASSES)
    for curve in curves:
        assert [p["fraction"] for p in curve["points"]] == pytest.approx(FRACTIONS.tolist())
        assert curve["points"][-1]["metrics"] == new_new
    auc = {(c["transformation"], c["order"]): area_under_curve(
        FRACTIONS, [p["metrics"]["all"]["mAP"] for p in c["points"]]) for c in curves}
    # sigma = the noise scale: uncertainty order is close to the oracle, both beat random
    assert auc["fastfill", "oracle"] > auc["fastfill", "random"], auc
    assert auc["fastfill", "uncertainty"] > auc["fastfill", "random"], auc
    assert auc["fct", "oracle"] > auc["fct", "random"], auc  # its own worst items first



def test_fastfill_curves_evaluate_each_gallery_once(monkeypatch):
    """The curves' shared endpoints (each transformation's gallery at 0, the new gallery at 1)
    are evaluated once, and every point is what evaluating its own gallery gives."""
    new, transformed, labels, scale = _gallery(n=120)
    fct = transformed[::-1].copy()
    galleries = {"fastfill": transformed, "fct": fct}
    evaluated = []

    def counting(query, gallery, *args, **kwargs):
        evaluated.append(gallery)
        return evaluate_case(query, gallery, *args, **kwargs)

    monkeypatch.setattr("fctlib.evaluation.backfill.evaluate_case", counting)
    curves = fastfill_curves(new, transformed, scale, fct, labels, OLD_CLASSES, seed=1,
                             distance="cosine")
    inner = len(FRACTIONS) - 2  # at n = 120 no inner fraction rounds to 0 or n items
    assert len(evaluated) == 3 + 5 * inner, len(evaluated)
    # exact: each point is compared with the same function on an equal gallery in this process
    orders = {"random": random_order(120, 1), "uncertainty": uncertainty_order(scale)}
    for curve in curves:
        gallery = galleries[curve["transformation"]]
        order = orders.get(curve["order"], oracle_order(gallery, new))
        for point in curve["points"][::7] + curve["points"][-1:]:
            expected = backfilled_gallery(gallery, new, order, point["fraction"])
            assert point["metrics"] == evaluate_case(new, expected, labels, OLD_CLASSES,
                                                     distance="cosine"), point["fraction"]


def test_backfill_curve_takes_known_points_as_given():
    new, transformed, labels, _ = _gallery(n=30)
    order = random_order(30, seed=0)
    marker = {"all": {"top1": -1.0}}
    points = backfill_curve(new, transformed, new, order, labels, OLD_CLASSES,
                            fractions=[0.0, 0.01, 0.5], known={0: marker})
    assert [p["backfilled"] for p in points] == [0, 0, 15]  # 0.01 of 30 rounds to none
    assert points[0]["metrics"] is marker and points[1]["metrics"] is marker
    assert points[2]["metrics"]["all"]["top1"] >= 0

@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_nearest_items_and_backfilled_share_match_brute_force(distance):
    rng = np.random.default_rng(0)
    new = rng.normal(size=(50, 6)).astype(np.float32)
    transformed = new + rng.normal(scale=0.8, size=new.shape).astype(np.float32)
    q, g = (for_distance(x, distance).astype(np.float64) for x in (new, transformed))
    d = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)  # each query's own item excluded
    np.testing.assert_array_equal(nearest_items(new, transformed, distance=distance, block=7),
                                  d.argmin(1))
    order = random_order(50, 1)
    gallery = backfilled_gallery(transformed, new, order, 0.2)
    d = ((q[:, None, :] - for_distance(gallery, distance)[None].astype(np.float64)) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    expected = np.isin(d.argmin(1), order[:10]).mean()
    assert backfilled_top1_share(new, transformed, new, order, 0.2,
                                 distance=distance) == pytest.approx(expected)
    assert backfilled_top1_share(new, transformed, new, order, 0.0, distance=distance) == 0.0
