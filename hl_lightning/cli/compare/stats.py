"""Statistics over seeds for hl-compare: Student t quantiles and p-values, means with CIs.

Dependency-free (``math`` and ``statistics`` only): the t distribution's CDF comes from
the regularized incomplete beta function (a continued fraction, as in Numerical Recipes
6.4), its quantile from bisection on the CDF.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Estimate", "beta_inc", "mean_ci", "paired_difference", "t_cdf", "t_quantile"]

_EPS = 1e-15
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Return the continued fraction of the incomplete beta function (modified Lentz)."""

    def nonzero(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    c, d = 1.0, 1.0 / nonzero(1.0 - (a + b) * x / (a + 1.0))
    result = d
    for m in range(1, 10_000):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for term in (even, odd):
            d = 1.0 / nonzero(1.0 + term * d)
            c = nonzero(1.0 + term / c)
            result *= c * d
        if abs(c * d - 1.0) < _EPS:
            return result
    raise ArithmeticError(f"incomplete beta({a}, {b}, {x}): the continued fraction diverges")


def beta_inc(a: float, b: float, x: float) -> float:
    """Return the regularized incomplete beta function I_x(a, b), for a, b > 0, 0 <= x <= 1.

    >>> round(beta_inc(2.0, 3.0, 0.4), 12)  # 1 - 0.6**4 - 4 * 0.4 * 0.6**3
    0.5248
    >>> round(beta_inc(0.5, 0.5, 0.5), 12)  # the arcsine distribution's median
    0.5
    """
    if a <= 0 or b <= 0 or not 0.0 <= x <= 1.0:
        raise ValueError(f"beta_inc needs a, b > 0 and 0 <= x <= 1, got {a}, {b}, {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Return P(T <= t) for Student's t distribution with ``df`` degrees of freedom.

    >>> t_cdf(0.0, 3)
    0.5
    >>> round(t_cdf(2.776445, 4), 6)
    0.975
    """
    if df <= 0:
        raise ValueError(f"t_cdf needs df > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * beta_inc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Return the t with P(T <= t) = ``p`` for Student's t with ``df`` degrees of freedom.

    >>> round(t_quantile(0.975, 4), 3)
    2.776
    >>> round(t_quantile(0.025, 9), 3)
    -2.262
    """
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got {p}, {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * high:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values, the half-width of its 95% CI and, for a paired difference,
    the two-sided p-value of the t-test of mean 0 (both None with a single value)."""

    mean: float
    ci95: float | None
    n: int
    p: float | None = None


def mean_ci(values: Sequence[float]) -> Estimate:
    """Return the mean of ``values`` with its Student-t 95% CI: mean ± t(0.975, n-1)·s/√n.

    One value has no interval (``ci95`` None), never a made-up one.

    >>> round(mean_ci([1.0, 2.0, 3.0]).ci95, 4)  # s = 1, t(0.975, 2) = 4.3027, 4.3027/√3
    2.4841
    >>> mean_ci([0.5])
    Estimate(mean=0.5, ci95=None, n=1, p=None)
    """
    if not values:
        raise ValueError("mean_ci needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Estimate(mean, None, 1)
    return Estimate(mean, t_quantile(0.975, n - 1) * _standard_error(values), n)


def _standard_error(values: Sequence[float]) -> float:
    """Return the standard error of the mean, s/√n (sample standard deviation s)."""
    return statistics.stdev(values) / math.sqrt(len(values))


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> Estimate:
    """Return the mean of ``values[i] - baseline[i]``, its 95% CI and the paired t-test's p.

    The p-value is two-sided, P(|T| >= |t|) with t = mean/(s/√n) and n-1 degrees of
    freedom; when the differences are all equal it is 0 (1 when they are all 0). A single
    pair has neither interval nor p-value.

    >>> difference = paired_difference([3.0, 5.0, 6.0], [2.0, 3.0, 3.0])  # 1, 2, 3
    >>> difference.mean, round(difference.ci95, 4), round(difference.p, 4)
    (2.0, 2.4841, 0.0742)
    """
    if len(values) != len(baseline):
        raise ValueError(f"paired_difference needs pairs: {len(values)} values, {len(baseline)}")
    differences = [value - base for value, base in zip(values, baseline, strict=True)]
    estimate = mean_ci(differences)
    if estimate.ci95 is None:
        return estimate
    error, df = _standard_error(differences), estimate.n - 1
    if error == 0.0:
        p = 1.0 if estimate.mean == 0.0 else 0.0
    else:
        t = estimate.mean / error
        p = beta_inc(df / 2.0, 0.5, df / (df + t * t))  # both tails of t_cdf at once
    return Estimate(estimate.mean, estimate.ci95, estimate.n, p)
