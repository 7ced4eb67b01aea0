"""Multi-step updates: AC and AM against brute force, generations, and the report's tables."""

import numpy as np
import pandas as pd
import pytest

from fctlib.evaluation.compatibility import compatibility_scores
from fctlib.report import compatibility as rc
from fctlib.suite.config import MultiStepConfig
from fctlib.suite.multistep import generation_classes


def _brute_force(m):
    n = len(m)
    wins = [m[i][j] > m[j][j] for i in range(n) for j in range(n) if i > j]
    lower = [m[i][j] for i in range(n) for j in range(n) if j <= i]
    return sum(wins) / len(wins), sum(lower) / len(lower)


def test_scores_of_a_hand_matrix():
    m = np.array([[50, np.nan, np.nan], [60, 55, np.nan], [40, 70, 65]], dtype=float)
    ac, am = compatibility_scores(m)
    assert ac == pytest.approx(2 / 3)  # (2,1) and (3,2) beat the diagonal, (3,1) does not
    assert am == pytest.approx((50 + 60 + 55 + 40 + 70 + 65) / 6)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_scores_match_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        m = np.tril(rng.uniform(size=(n, n)))
        m[np.triu_indices(n, k=1)] = np.nan
        assert compatibility_scores(m) == pytest.approx(_brute_force(m))


def test_scores_refuse_a_non_square_matrix():
    with pytest.raises(ValueError, match="square matrix"):
        compatibility_scores(np.zeros((2, 3)))


def test_generation_classes():
    assert generation_classes([4, 7, 10], 10) == [list(range(4)), list(range(7)),
                                                  list(range(10))]
    assert [len(g) for g in generation_classes(None, 100)] == [50, 75, 100]
    with pytest.raises(ValueError, match="more classes than the data set has"):
        generation_classes([4, 12], 10)
    for counts in ([4, 4, 10], [10], [1, 5]):
        with pytest.raises(ValueError, match="class_counts"):
            MultiStepConfig(class_counts=counts)


def _saved(offset, distances=("l2",)):
    lower = [[0.5 + offset, None, None], [0.6 + offset, 0.55, None], [0.4, 0.7, 0.65]]
    ac, am = compatibility_scores(np.array(lower, dtype=float))
    results = {"top1": lower, "mAP": lower, "AC_top1": ac, "AM_top1": am, "AC_mAP": ac,
               "AM_mAP": am}
    return {"multistep": {"generations": [[0], [0, 1], [0, 1, 2]],
                          "distances": {d: {"independent": results} for d in distances}}}


def test_report_tables_mean_over_seeds():
    metrics = {0: _saved(0.0, ("l2", "cosine")), 1: _saved(0.1, ("l2", "cosine"))}
    long = rc.matrix_rows(metrics)
    assert len(long) == 2 * 2 * 2 * 6  # seeds x distances x metrics x lower-triangle entries
    table = rc.matrix_table(long).set_index(["distance", "method", "metric", "query", "gallery"])
    assert table.at[("l2", "independent", "top1", 1, 1), "mean"] == pytest.approx(55.0)
    assert table.at[("cosine", "independent", "top1", 2, 2), "mean"] == pytest.approx(55.0)
    assert table.at[("l2", "independent", "top1", 3, 1), "seeds"] == 2
    scores = rc.scores_table(metrics)
    assert list(scores["distance"]) == ["l2", "cosine"]
    table = rc.compatibility_table(scores, "l2")
    assert list(table.columns) == ["method", "AC", "AM"]
    # seed 0: (2,1) 0.6 > 0.5 and (3,2) 0.7 > 0.55 -> 2/3; seed 1: 0.7 > 0.6, 0.5 < 0.6, 0.7 > 0.55
    assert table.at[0, "AC"] == pytest.approx(2 / 3, abs=1e-3)
    am0 = (0.5 + 0.6 + 0.55 + 0.4 + 0.7 + 0.65) / 6
    assert table.at[0, "AM"] == pytest.approx(100 * (am0 + (am0 + 0.2 / 6)) / 2, abs=0.01)
    sentence = rc.compatibility_sentence(table, seeds=2, distance="l2")
    assert "AC falls short for independent 0.67" in sentence
    assert rc.scores_table({0: {}}).empty


def test_report_keeps_the_method_order_of_the_experiment():
    results = _saved(0.0)["multistep"]["distances"]["l2"]["independent"]
    methods = ["independent", "bct", "dsimplex", "fct-chained", "fct-direct"]
    steps = {"multistep": {"distances": {"l2": {m: results for m in sorted(methods)}}}}
    assert list(rc.compatibility_table(rc.scores_table({0: steps}), "l2")["method"]) == methods


def _methods():
    rows = [("independent", "old/old", 50.0, 70.0), ("independent", "new/new", 70.0, 70.0),
            ("independent", "new/old", 5.0, 70.0), ("bct", "bct/old", 52.0, 66.0),
            ("bct", "bct/bct", 66.0, 66.0), ("oca", "oca/old", 48.0, 69.0),
            ("fct", "fct/side", 65.0, 70.0), ("fct-arch", "fct-arch/side", 60.0, 75.0)]
    return pd.DataFrame([{"method": m, "case": c, "distance": "l2", "top1": t, "top5": t,
                          "mAP": t / 2, "new_top1": own} for m, c, t, own in rows])


def test_criteria_and_price():
    criteria = rc.criteria_table(_methods()).set_index(["case", "metric"])
    assert criteria.at[("bct/old", "top1"), "holds"]
    assert criteria.at[("bct/old", "top1"), "margin"] == pytest.approx(2.0)
    assert not criteria.at[("oca/old", "top1"), "holds"]
    assert not criteria.at[("new/old", "mAP"), "holds"]
    assert "dsimplex/old" not in criteria.index.get_level_values(0)  # no rows: no criterion
    prices = rc.price_table(_methods()).set_index("method")["price"]
    assert prices.to_dict() == {"independent": 0.0, "bct": 4.0, "oca": 1.0, "fct": 0.0}
    sentence = rc.criteria_sentence(rc.criteria_table(_methods()), rc.price_table(_methods()),
                                    "l2")
    assert "bct/old beats old/old (52.00% vs 50.00%)" in sentence
    assert "oca/old does not beat old/old" in sentence
    assert "bct +4.00" in sentence and "oca +1.00" in sentence

