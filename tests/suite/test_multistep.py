"""Multi-step updates: AC and AM against brute force, and the generations' classes."""

import numpy as np
import pytest

from fctlib.evaluation.compatibility import compatibility_scores
from fctlib.experiment.config import MultiStepConfig
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


def test_each_method_registers_its_own_chain_or_cases():
    from fctlib.methods.registry import CASES, CHAINS
    from fctlib.suite.multistep import MULTISTEP_METHODS, TRAINED

    assert TRAINED == tuple(CHAINS) and MULTISTEP_METHODS == (*CHAINS, *CASES)
    for method, generation in CHAINS.items():
        assert generation.__module__ == f"fctlib.methods.{method}", method
    assert {case.__module__ for case in CASES.values()} == {"fctlib.methods.fct"}


def test_generations_come_from_the_registered_chain(smoke_run, monkeypatch):
    from fctlib.methods.registry import CASES, CHAINS
    from fctlib.suite.multistep import MultiStep

    steps = MultiStep(smoke_run)
    monkeypatch.setitem(CHAINS, "echo", lambda s, k: ("echo", s is steps, k))
    assert steps.generation("echo", 2) == ("echo", True, 2)
    assert steps.generation("bct", 0) == steps.generation("independent", 0)  # BCT starts plain
    with pytest.raises(ValueError, match="method must be one of"):
        steps.generation("unregistered", 0)
    monkeypatch.setitem(CASES, "pair", lambda s, i, j: (i, j))
    assert steps.case("pair", 2, 1) == (2, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        steps.case("unregistered", 1, 0)


def test_the_bct_chain_trains_the_variant_chosen_on_tune_that_it_can_chain(smoke_run):
    from fctlib.methods import bct
    from fctlib.suite.multistep import MultiStep

    points = bct.variant_points(smoke_run, splits=("tune",))
    variant, weight = bct.choose_from(points, bct.PROTOCOL[0], chainable=True)
    assert bct.VARIANTS[variant].chainable
    generation = MultiStep(smoke_run).generation("bct", 1)
    assert generation.depends[2:4] == (weight, variant)
    normsm = [p for p in points if p["variant"] == "openbct-normsm"]  # alone: nothing to chain
    with pytest.raises(ValueError, match="may be chosen and chained"):
        bct.choose_from(normsm, bct.PROTOCOL[0], chainable=True)
    assert bct.choose_from(normsm, bct.PROTOCOL[0]) == ("openbct-normsm", 1.0)
