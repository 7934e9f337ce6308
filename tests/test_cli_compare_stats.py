"""Tests for hl_lightning/cli/compare/stats.py: t quantiles and CDF, means with CIs, paired tests.

Checked against t-table values and values worked out by hand, and against scipy where
it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from hl_lightning.cli.compare.stats import (
    Estimate,
    beta_inc,
    mean_ci,
    paired_difference,
    t_cdf,
    t_quantile,
)

T_TABLE_975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 30: 2.042}


@pytest.mark.parametrize(("df", "expected"), T_TABLE_975.items())
def test_t_quantile_matches_the_t_table(df: int, expected: float) -> None:
    assert round(t_quantile(0.975, df), 3) == expected
    assert round(t_quantile(0.025, df), 3) == -expected


def test_t_quantile_inverts_the_cdf() -> None:
    for df in (1, 2.5, 7, 100):
        for p in (0.001, 0.1, 0.5, 0.9, 0.999):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-11)


def test_t_cdf_closed_forms() -> None:
    # df 1 is the Cauchy distribution; df 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-5.0, -0.3, 0.0, 1.0, 12.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)
    assert t_cdf(math.inf, 3) == 1.0 and t_cdf(-math.inf, 3) == 0.0


def test_beta_inc_closed_forms() -> None:
    for x in (0.0, 0.01, 0.3, 0.5, 0.97, 1.0):
        assert beta_inc(1.0, 1.0, x) == pytest.approx(x, abs=1e-14)
        assert beta_inc(2.0, 1.0, x) == pytest.approx(x * x, abs=1e-14)
        arcsine = 2 / math.pi * math.asin(math.sqrt(x))
        assert beta_inc(0.5, 0.5, x) == pytest.approx(arcsine, abs=1e-13)
    assert beta_inc(3.0, 2.0, 0.2) + beta_inc(2.0, 3.0, 0.8) == pytest.approx(1.0, abs=1e-14)


def test_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    for df in (1, 3, 9.5, 40, 2000):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-10)
        for t in (-4.0, -1.0, 0.2, 2.5, 30.0):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-10, abs=1e-15)
    for a, b, x in ((0.5, 0.5, 0.3), (500.0, 0.5, 0.99), (0.1, 10.0, 1e-3), (50.0, 50.0, 0.4)):
        assert beta_inc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10)
    values, baseline = [0.61, 0.64, 0.58, 0.66], [0.60, 0.61, 0.59, 0.62]
    difference = paired_difference(values, baseline)
    assert difference.p == pytest.approx(stats.ttest_rel(values, baseline).pvalue, rel=1e-10)


@pytest.mark.parametrize(
    "call",
    [
        lambda: t_quantile(1.0, 3),
        lambda: t_quantile(0.5, 0),
        lambda: t_cdf(1.0, -1),
        lambda: beta_inc(1, 1, 2),
    ],
)
def test_out_of_range_arguments_are_refused(call: Callable[[], float]) -> None:
    with pytest.raises(ValueError, match="needs"):
        call()


def test_mean_ci_by_hand() -> None:
    estimate = mean_ci([0.50, 0.54, 0.52])  # s = 0.02, t(0.975, 2) = 4.302653
    assert estimate.mean == pytest.approx(0.52) and estimate.n == 3
    assert estimate.ci95 == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
    assert estimate.p is None


def test_one_value_has_no_interval_and_none_is_refused() -> None:
    assert mean_ci([0.52]) == Estimate(0.52, None, 1)
    assert paired_difference([0.6], [0.5]).ci95 is None
    assert paired_difference([0.6], [0.5]).p is None
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="needs pairs"):
        paired_difference([0.1, 0.2], [0.1])


def test_paired_difference_by_hand() -> None:
    # differences 0.02, 0.04, 0.06: mean 0.04, s 0.02, t = 0.04 / (0.02/√3) = 2√3
    difference = paired_difference([0.52, 0.55, 0.58], [0.50, 0.51, 0.52])
    assert difference.mean == pytest.approx(0.04) and difference.n == 3
    assert difference.ci95 == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
    # df 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2)
    t = 2 * math.sqrt(3)
    assert difference.p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)


def test_constant_differences_have_p_zero_and_none_p_one() -> None:
    shifted = paired_difference([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert shifted.mean == 0.5 and shifted.ci95 == 0.0 and shifted.p == 0.0
    same = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert same.mean == 0.0 and same.ci95 == 0.0 and same.p == 1.0
