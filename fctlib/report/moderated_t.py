"""Student's t tests for many numbers of few seeds each, with each number's variance shrunk
toward a common prior fitted to all of them (the empirical Bayes "moderated t" of Smyth,
Statistical Applications in Genetics and Molecular Biology 3(1), 2004).

With 3 seeds a number's own variance has 2 degrees of freedom: among 40 numbers one is
expected to be under a fifth of its true value (with 4 seeds, under 0.27 of it), and that
number's test then fires on a faithful run. The prior (a scaled inverse chi-square with
`prior_dof` degrees of freedom around `prior_variance`) is fitted by the method of moments on
the log variances; each moderated variance is the dof-weighted mean of the prior's and the
number's own, with their dof summed.
Plain numpy and math: no scipy on a bare machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def digamma(x: float) -> float:
    """d/dx log Gamma(x) for x > 0 (recurrence up to 10, then the asymptotic series)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    return result + math.log(x) - 0.5 / x - inv2 * (
        1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))


def trigamma(x: float) -> float:
    """d^2/dx^2 log Gamma(x) for x > 0 (recurrence up to 10, then the asymptotic series)."""
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    inv2 = 1.0 / (x * x)
    return result + 1.0 / x + inv2 / 2 + inv2 / x * (
        1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))


def inverse_trigamma(y: float) -> float:
    """The x > 0 with trigamma(x) = y (trigamma falls monotonically: bisection on log x)."""
    low, high = -30.0, 30.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if trigamma(math.exp(mid)) > y else (low, mid)
    return math.exp((low + high) / 2)


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz), taken on the side of x where it converges fast."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (a * math.log(x) + b * math.log1p(-x)
                 - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)) - math.log(a))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with `dof` degrees of freedom (> 0, possibly fractional;
    infinite: the normal distribution)."""
    if math.isinf(dof):
        return math.erfc(abs(t) / math.sqrt(2.0))
    return _incomplete_beta(dof / 2, 0.5, dof / (dof + t * t))


def t_quantile(p: float, dof: float) -> float:
    """Student's t quantile at probability p (> 0.5): bisection on the two-sided tail."""
    tail = 2 * (1 - p)
    low, high = 0.0, 1.0
    while t_two_sided_p(high, dof) > tail:
        low, high = high, 2 * high
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if t_two_sided_p(mid, dof) > tail else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class VariancePrior:
    """The common prior of the numbers' true variances: scaled inverse chi-square with `dof`
    degrees of freedom (infinite: every number has the same variance) around `variance`."""

    dof: float
    variance: float


def fit_variance_prior(variances, dofs, max_dof: float = math.inf) -> VariancePrior:
    """The prior by the method of moments on log variances (Smyth 2004, section 6.2): the mean
    and spread of log s^2 beyond what each number's own chi-square sampling explains. Its dof
    is at most `max_dof`: a fit above it keeps its variance and weighs as `max_dof` (spreads
    that few seeds cannot tell apart are not taken for equal). Needs at least two positive
    variances; zero ones (numbers equal over every seed) are left out."""
    variances, dofs = np.asarray(variances, float), np.asarray(dofs, float)
    keep = variances > 0
    if keep.sum() < 2:
        raise ValueError(f"fitting a variance prior needs 2 numbers with a spread, got "
                         f"{int(keep.sum())}")
    variances, dofs = variances[keep], dofs[keep]
    centred = np.log(variances) - np.array([digamma(d / 2) - math.log(d / 2) for d in dofs])
    mean = float(centred.mean())
    excess = float(centred.var(ddof=1)) - float(np.mean([trigamma(d / 2) for d in dofs]))
    if excess <= 0:
        return VariancePrior(min(math.inf, max_dof), math.exp(mean))
    dof = 2 * inverse_trigamma(excess)
    return VariancePrior(min(dof, max_dof), math.exp(mean + digamma(dof / 2) - math.log(dof / 2)))


def moderated_variance(variance: float, dof: float, prior: VariancePrior) -> tuple[float, float]:
    """A number's variance shrunk toward the prior and its degrees of freedom: (d0 s0^2 + d s^2)
    / (d0 + d) on d0 + d; the prior's variance itself when the prior's dof is infinite."""
    if math.isinf(prior.dof):
        return prior.variance, math.inf
    total = prior.dof + dof
    return (prior.dof * prior.variance + dof * variance) / total, total
