"""compare(): is B faster or slower than A? The A/B verdict of `benchrun compare` and the report.

  * change = median(B) / median(A) - 1 (relative change of the median: robust to the outliers
    and the long right tail of timings).
  * ci: percentile bootstrap interval of that change at ``confidence``, both sides resampled
    independently (benchrun.stats.boot_stats, numpy default_rng(seed): reproducible).
  * test: two-sided Mann-Whitney U (scipy), p_value its p; 1.0 when all samples are equal.
  * verdict: significant when p < alpha (default 1 - confidence) AND the CI excludes 0; then "slower" or
    "faster" from the sign of the change and ``higher_is_better`` (False for times, True for
    throughputs); else "no significant change".
  * mdc: the minimum detectable relative change at this sample size (benchrun.power: 80 %
    power, two-sided at alpha) for the pooled noise cv = sqrt((var A + var B) / 2) /
    |mean A|, with n the harmonic mean of n_a and n_b (rounded down); NaN with fewer than two
    samples a side. A "no significant change" with an MDC of 8 % says little about a 2 % change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from benchrun import power, stats
from benchrun.errors import ConfigError

VERDICTS = ("faster", "slower", "no significant change")
TEST = "Mann-Whitney U"


@dataclass(frozen=True)
class Comparison:
    """B against A (see the module docstring for each field)."""

    median_a: float
    median_b: float
    change: float
    ci: tuple[float, float]
    test: str
    p_value: float
    verdict: str
    mdc: float
    n_a: int
    n_b: int
    confidence: float = 0.95
    higher_is_better: bool = False

    @property
    def significant(self) -> bool:
        return self.verdict != "no significant change"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields and "significant" (NaN becomes None)."""
        d: dict[str, Any] = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }
        d["ci"] = [None if not math.isfinite(v) else v for v in self.ci]
        d["significant"] = self.significant
        return d


def _mdc(a: np.ndarray, b: np.ndarray, alpha: float) -> float:
    if a.size < 2 or b.size < 2:
        return math.nan
    mean_a = float(np.mean(a))
    if mean_a == 0:
        return math.nan
    cv = math.sqrt((float(np.var(a, ddof=1)) + float(np.var(b, ddof=1))) / 2) / abs(mean_a)
    n = max(2, int(2 / (1 / a.size + 1 / b.size)))
    return power.minimum_detectable_change(n, cv, alpha=alpha)


def compare(
    a: Any,
    b: Any,
    *,
    higher_is_better: bool = False,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: Optional[float] = None,
) -> Comparison:
    """B against A: relative change of the median with its bootstrap CI, Mann-Whitney U, the
    verdict and the minimum detectable change (rules: module docstring). ``alpha`` is the test's
    significance level, by default 1 - confidence."""
    from scipy import stats as sst

    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ConfigError(f"confidence {confidence!r}: must be between 0 and 1")
    alpha = 1 - confidence if alpha is None else alpha
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha {alpha!r}: must be between 0 and 1")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"resamples {resamples!r}: must be a whole number >= 1")
    x = stats._array(a, "A")
    y = stats._array(b, "B")
    med_a, med_b = float(np.median(x)), float(np.median(y))
    rng = np.random.default_rng(seed)
    lo: Optional[float]
    if med_a == 0:
        change = lo = hi = math.nan
    else:
        change = med_b / med_a - 1
        ma = stats.boot_stats(x, resamples, rng, stat="median")
        mb = stats.boot_stats(y, resamples, rng, stat="median")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = mb / ma - 1
        ratios = ratios[np.isfinite(ratios)]
        lo, hi = stats.interval(ratios, confidence) if ratios.size else (math.nan, math.nan)
    if np.ptp(np.concatenate([x, y])) == 0:
        p = 1.0
    else:
        p = float(sst.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    significant = p < alpha and (lo > 0 or hi < 0)
    if not significant:
        verdict = "no significant change"
    elif (change > 0) != bool(higher_is_better):
        verdict = "slower"
    else:
        verdict = "faster"
    return Comparison(
        median_a=med_a,
        median_b=med_b,
        change=change,
        ci=(float(lo), float(hi)),
        test=TEST,
        p_value=p,
        verdict=verdict,
        mdc=_mdc(x, y, alpha),
        n_a=int(x.size),
        n_b=int(y.size),
        confidence=float(confidence),
        higher_is_better=bool(higher_is_better),
    )
