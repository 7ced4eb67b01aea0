import math

import numpy as np
import pytest

from fctlib.report.moderated_t import (
    VariancePrior,
    digamma,
    fit_variance_prior,
    inverse_trigamma,
    moderated_variance,
    t_quantile,
    t_two_sided_p,
    trigamma,
)

EULER_GAMMA = 0.5772156649015329


def test_polygamma_closed_forms():
    assert digamma(1.0) == pytest.approx(-EULER_GAMMA, abs=1e-12)
    assert digamma(0.5) == pytest.approx(-EULER_GAMMA - 2 * math.log(2), abs=1e-12)
    assert digamma(7.25) - digamma(6.25) == pytest.approx(1 / 6.25, abs=1e-12)  # recurrence
    assert trigamma(1.0) == pytest.approx(math.pi ** 2 / 6, abs=1e-12)
    assert trigamma(0.5) == pytest.approx(math.pi ** 2 / 2, abs=1e-12)
    assert trigamma(30.0) == pytest.approx(sum(1 / (30 + k) ** 2 for k in range(200_000)),
                                           abs=1e-5)


@pytest.mark.parametrize("x", [0.05, 0.5, 3.0, 250.0])
def test_inverse_trigamma_round_trip(x):
    assert inverse_trigamma(trigamma(x)) == pytest.approx(x, rel=1e-9)


def _tail_by_integration(t: float, dof: float) -> float:
    """P(|T| >= t) by the trapezoid rule on the density from 0 to t: an independent check."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    x = np.linspace(0.0, t, 200_001)
    density = np.exp(log_norm - (dof + 1) / 2 * np.log1p(x * x / dof))
    return 1 - 2 * float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)))


@pytest.mark.parametrize(("t", "dof"), [(0.3, 1), (2.0, 2), (4.5, 3.7), (3.0, 6), (2.5, 40)])
def test_t_tail_matches_closed_forms_and_integration(t, dof):
    closed = {1: 1 - 2 * math.atan(t) / math.pi, 2: 1 - t / math.sqrt(2 + t * t)}
    p = t_two_sided_p(t, dof)
    assert p == pytest.approx(_tail_by_integration(t, dof), abs=1e-9)
    if dof in closed:
        assert p == pytest.approx(closed[dof], rel=1e-12)
    assert t_two_sided_p(-t, dof) == p and t_two_sided_p(0.0, dof) == pytest.approx(1.0)


def test_t_tail_is_accurate_far_out_and_tends_to_the_normal():
    assert t_two_sided_p(1000.0, 2) == pytest.approx(1 - 1000 / math.sqrt(2 + 1e6), rel=1e-6)
    assert t_two_sided_p(1.96, math.inf) == pytest.approx(0.0499958, abs=1e-7)
    assert t_two_sided_p(1.96, 1e6) == pytest.approx(t_two_sided_p(1.96, math.inf), abs=1e-6)


@pytest.mark.parametrize(("p", "dof", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.995, 2, 9.925), (0.975, 30, 2.042),
    (0.95, 5, 2.015), (0.9995, 10, 4.587), (0.975, math.inf, 1.960)])
def test_t_quantile_matches_the_printed_table(p, dof, table):
    assert t_quantile(p, dof) == pytest.approx(table, abs=2e-3)


def _sample_variances(rng, count, prior_dof, prior_variance, dof):
    """Sample variances of `count` numbers whose true variances follow the prior."""
    true = prior_dof * prior_variance / rng.chisquare(prior_dof, count)
    return true * rng.chisquare(dof, count) / dof


def test_prior_fit_recovers_a_known_prior():
    rng = np.random.default_rng(0)
    variances = _sample_variances(rng, 50_000, prior_dof=6.0, prior_variance=2.0, dof=2)
    prior = fit_variance_prior(variances, np.full(variances.size, 2))
    assert prior.dof == pytest.approx(6.0, rel=0.15)
    assert prior.variance == pytest.approx(2.0, rel=0.05)


def test_prior_fit_of_equal_variances_is_pooled_and_capped():
    rng = np.random.default_rng(1)
    variances = 3.0 * rng.chisquare(2, 20_000) / 2  # one true variance, 2 dof each
    dofs = np.full(variances.size, 2)
    prior = fit_variance_prior(variances, dofs)
    assert prior.dof > 100 and prior.variance == pytest.approx(3.0, rel=0.05)
    capped = fit_variance_prior(variances, dofs, max_dof=4.0)
    assert capped.dof == 4.0 and capped.variance == pytest.approx(3.0, rel=0.1)
    with pytest.raises(ValueError, match="2 numbers with a spread"):
        fit_variance_prior([0.0, 1.0], [2, 2])


def test_moderated_variance_by_hand():
    assert moderated_variance(1.0, 2, VariancePrior(4.0, 4.0)) == (3.0, 6.0)  # (16 + 2) / 6
    assert moderated_variance(1.0, 2, VariancePrior(math.inf, 4.0)) == (4.0, math.inf)
