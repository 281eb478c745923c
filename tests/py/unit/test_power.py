"""benchrun.power against scipy: the power of the two-sided two-sample t-test computed here
directly from the noncentral t distribution (statsmodels' TTestIndPower does the same sum)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from benchrun.errors import ConfigError
from benchrun.power import minimum_detectable_change, power_of, repetitions_for


def reference_power(change: float, n: int, cv: float, alpha: float = 0.05) -> float:
    df = 2 * n - 2
    nc = change / cv * math.sqrt(n / 2)
    crit = stats.t.ppf(1 - alpha / 2, df)
    with np.errstate(all="ignore"):  # boost warns at small df, yet its values are right:
        return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def test_reference_power_matches_integrating_the_density():
    # The reference itself, where boost warns (df = 2): against a quadrature of the nct density.
    n, cv, change = 2, 0.05, 0.2827
    df, nc = 2 * n - 2, change / cv * math.sqrt(n / 2)
    crit = stats.t.ppf(0.975, df)
    with np.errstate(all="ignore"):
        upper = integrate.quad(lambda t: stats.nct.pdf(t, df, nc), crit, np.inf)[0]
        lower = integrate.quad(lambda t: stats.nct.pdf(t, df, nc), -np.inf, -crit)[0]
    assert reference_power(change, n, cv) == pytest.approx(upper + lower, abs=1e-6)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # benchrun.power itself never warns
@pytest.mark.parametrize("n", [2, 3, 5, 10, 30, 100, 1000, 50_000])
@pytest.mark.parametrize("cv", [0.001, 0.02, 0.3])
def test_mdc_has_power_080(n: int, cv: float):
    mdc = minimum_detectable_change(n, cv)
    assert reference_power(mdc, n, cv) == pytest.approx(0.8, abs=1e-3)
    # ... and it is the smallest such change: 1 % less has less power.
    assert reference_power(mdc * 0.99, n, cv) < 0.8


def test_mdc_known_values_and_shape():
    # Large n: the normal approximation (z_0.975 + z_0.8) sqrt(2/n) cv = 2.8016 sqrt(2/n) cv.
    assert minimum_detectable_change(10_000, 0.1) == pytest.approx(
        2.8016 * math.sqrt(2 / 10_000) * 0.1, rel=2e-3
    )
    # Linear in cv, decreasing in n, and larger than the normal approximation at small n.
    assert minimum_detectable_change(10, 0.2) == pytest.approx(
        2 * minimum_detectable_change(10, 0.1)
    )
    series = [minimum_detectable_change(n, 0.05) for n in (2, 3, 10, 30, 100)]
    assert series == sorted(series, reverse=True)
    assert minimum_detectable_change(5, 0.1) > 2.8016 * math.sqrt(2 / 5) * 0.1
    assert minimum_detectable_change(10, 0.0) == 0.0


def test_other_alpha_and_power():
    mdc = minimum_detectable_change(20, 0.05, alpha=0.01, power=0.9)
    assert reference_power(mdc, 20, 0.05, alpha=0.01) == pytest.approx(0.9, abs=1e-3)
    assert power_of(mdc, 20, 0.05, alpha=0.01) == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("change,cv", [(0.02, 0.05), (0.02, 0.01), (0.05, 0.2), (0.5, 0.01)])
def test_repetitions_for_is_the_smallest_enough(change: float, cv: float):
    n = repetitions_for(change, cv)
    assert reference_power(change, n, cv) >= 0.8 - 1e-9
    if n > 2:
        assert reference_power(change, n - 1, cv) < 0.8


def test_repetitions_for_inverts_mdc():
    for n in (4, 17, 60):
        assert repetitions_for(minimum_detectable_change(n, 0.07) * 1.0001, 0.07) == n
    assert repetitions_for(0.01, 0.0) == 2


def test_bad_inputs():
    with pytest.raises(ConfigError, match="repetitions 1"):
        minimum_detectable_change(1, 0.1)
    with pytest.raises(ConfigError, match="cv"):
        minimum_detectable_change(10, -0.1)
    with pytest.raises(ConfigError, match="cv"):
        minimum_detectable_change(10, float("nan"))
    with pytest.raises(ConfigError, match="detect"):
        repetitions_for(0, 0.1)
    with pytest.raises(ConfigError, match="more than 100000 repetitions"):
        repetitions_for(0.0001, 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        minimum_detectable_change(10, 0.1, alpha=1.5)
