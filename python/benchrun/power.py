"""Power analysis for comparing two series of repeated measurements: the minimum detectable
change for n repetitions, and the repetitions needed to detect a change.

The model: a baseline and a candidate, each measured n times, with the same relative noise
cv = stddev / mean (the coefficient of variation), compared with a two-sided two-sample t-test
(equal variances, df = 2n - 2) at significance ``alpha``. A true relative change d of the mean
is an effect of d / cv standard deviations, and the test statistic then follows a noncentral t
distribution with noncentrality (d / cv) sqrt(n / 2). The power is the probability that the test
rejects:

    power(d) = P(T' > t_{1-alpha/2, df}) + P(T' < -t_{1-alpha/2, df}),   T' ~ nct(df, (d/cv) sqrt(n/2))

minimum_detectable_change(n, cv) is the d at which power(d) equals ``power`` (default 0.8, with
alpha = 0.05: "95 % confidence, 80 % power"), solved numerically (Brent's method: power is
increasing in d). repetitions_for(change, cv) is the smallest n whose minimum detectable change
is at most ``change``. scipy is imported on first use only, so `import benchrun` stays light.
"""

from __future__ import annotations

import math

from benchrun.errors import ConfigError

ALPHA = 0.05
POWER = 0.8
MAX_REPETITIONS = 100_000


def _check(cv: float, alpha: float, power: float) -> None:
    if not (isinstance(cv, (int, float)) and math.isfinite(cv) and cv >= 0):
        raise ConfigError(f"cv {cv!r}: expected a finite number >= 0")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha {alpha!r}: must be between 0 and 1")
    if not alpha / 2 < power < 1:
        raise ConfigError(f"power {power!r}: must be between alpha/2 and 1")


def _whole_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"repetitions {n!r}: need a whole number >= 2 (a variance needs two)")
    return n


def power_of(change: float, n: int, cv: float, *, alpha: float = ALPHA) -> float:
    """The probability that a two-sided two-sample t-test at ``alpha`` with n repetitions per
    side detects a true relative change ``change`` of the mean, for noise ``cv``."""
    import numpy as np
    from scipy import stats  # heavy: only when a power is computed

    _whole_n(n)
    _check(cv, alpha, 0.5)
    if cv == 0:
        return 1.0 if change != 0 else alpha
    df = 2 * n - 2
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(change) / cv * math.sqrt(n / 2)
    with np.errstate(all="ignore"):  # boost's nct fails (nan) far in the tails: the limits
        upper = float(stats.nct.sf(crit, df, nc))
        lower = float(stats.nct.cdf(-crit, df, nc))
    if not math.isfinite(upper):
        upper = 1.0 if nc > crit else 0.0
    if not math.isfinite(lower):
        lower = 0.0
    return min(1.0, upper + lower)


def minimum_detectable_change(
    n: int, cv: float, *, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest true relative change (0.05 = 5 %) that n repetitions per side detect with
    probability ``power`` at significance ``alpha`` (two-sided), for noise ``cv`` (a fraction)."""
    from scipy import optimize, stats

    _whole_n(n)
    _check(cv, alpha, power)
    if cv == 0:
        return 0.0
    # In units of cv the answer does not depend on cv: solve for the effect size, then scale.
    # The bracket starts at the normal approximation (z_{1-alpha/2} + z_power) sqrt(2/n), which
    # the t-based answer exceeds by less than 2.1x (at n = 2); far bigger effects would take the
    # noncentral t into its numerically unstable tail.
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    hi = max(z, 0.5) * math.sqrt(2 / n) * 2.5
    while power_of(hi, n, 1.0, alpha=alpha) < power:
        hi *= 2
        if hi > 1e6:  # pragma: no cover - df >= 2 always gets there long before
            raise ConfigError(f"no detectable change for n={n} at power {power}")
    effect = optimize.brentq(
        lambda d: power_of(d, n, 1.0, alpha=alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-10
    )
    return float(effect) * cv


def repetitions_for(change: float, cv: float, *, alpha: float = ALPHA, power: float = POWER) -> int:
    """The smallest number of repetitions per side (at least 2) whose minimum detectable change
    is at most ``change`` (a relative change > 0), for noise ``cv``."""
    if not (isinstance(change, (int, float)) and math.isfinite(change) and change > 0):
        raise ConfigError(f"detect {change!r}: expected a relative change > 0 (0.02 = 2 %)")
    _check(cv, alpha, power)
    if minimum_detectable_change(2, cv, alpha=alpha, power=power) <= change:
        return 2
    # The normal approximation 2 ((z_a + z_b) cv / d)^2 is a close lower bound: start there,
    # then bisect on the exact (t-based) figure, which decreases with n.
    from scipy import stats

    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    lo = max(2, int(2 * (z * cv / change) ** 2) - 1)  # may already be enough: checked below
    if lo > MAX_REPETITIONS:
        raise _too_many(change, cv)
    if minimum_detectable_change(lo, cv, alpha=alpha, power=power) <= change:
        return lo
    hi = max(lo + 1, 2 * lo)
    while minimum_detectable_change(hi, cv, alpha=alpha, power=power) > change:
        lo, hi = hi, hi * 2
        if hi > 2 * MAX_REPETITIONS:
            raise _too_many(change, cv)
    while hi - lo > 1:  # invariant: lo is not enough, hi is
        mid = (lo + hi) // 2
        if minimum_detectable_change(mid, cv, alpha=alpha, power=power) <= change:
            hi = mid
        else:
            lo = mid
    if hi > MAX_REPETITIONS:
        raise _too_many(change, cv)
    return hi


def _too_many(change: float, cv: float) -> ConfigError:
    return ConfigError(
        f"detecting a {change:.3%} change with noise cv={cv:.3%} needs more than "
        f"{MAX_REPETITIONS} repetitions: reduce the noise or ask for a larger change"
    )


__all__ = ["ALPHA", "POWER", "minimum_detectable_change", "power_of", "repetitions_for"]
