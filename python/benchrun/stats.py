"""Statistics of repeated measurements: summaries, outliers, warm-up, bimodality, comparisons.

Rules (values are taken in run order):
  * mean, median, stddev (ddof=1; NaN when n < 2), cv = stddev / mean, min, max.
  * ci_low/ci_high: percentile bootstrap confidence interval of the mean (default 95%), from
    ``resamples`` resamples drawn with numpy's default_rng(seed): reproducible for a given seed.
  * outliers: Tukey's rule, outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (linear-interpolated quartiles).
  * mad_outliers: Iglewicz & Hoaglin's modified z-score |x - median| / (1.4826 MAD) > 3.5; when
    MAD is 0 the scale is 1.2533 × the mean absolute deviation from the median (their fallback),
    and when that is 0 too nothing is flagged.
  * warmup: the steady state is the second half of the samples (median m, scale s = the larger
    of 1.4826 MAD and the standard deviation, at least 1e-9 |m|); the warm-up is the leading run
    of samples above m + 3.5 s, so slow first runs (cold caches, JIT, page faults) count and a
    single late outlier does not. At most half the samples can be warm-up; fewer than 4 give 0.
  * bimodal: n >= 10, Sarle's bimodality coefficient (g² + 1) / (k + 3 (n-1)² / ((n-2)(n-3))) >
    5/9 (g, k: bias-corrected skewness and excess kurtosis), AND a Gaussian kernel density
    (Silverman's robust bandwidth) with at least two modes that each hold >= 15% (and >= 3) of
    the samples, separated by a valley below 60% of the lower peak. The coefficient alone flags
    uniform and strongly skewed unimodal data (its threshold is exactly their value); the
    density check keeps those out. Below ~20 samples only very clear mixtures are flagged.
  * compare(): change = mean(candidate) / mean(baseline) - 1; its CI is a percentile bootstrap
    of the same ratio (both sides resampled independently); p_value is scipy's two-sided
    Mann–Whitney U; significant = p < alpha and the CI excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from benchrun.errors import ConfigError

_CHUNK = 1 << 21  # bootstrap index elements per chunk: bounds memory (16 MiB of int64)


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one series of measurements (see the module docstring)."""

    n: int
    mean: float
    median: float
    stddev: float
    cv: float
    min: float
    max: float
    ci_low: float
    ci_high: float
    outliers: tuple[int, ...]
    mad_outliers: tuple[int, ...]
    warmup: int
    bimodal: bool


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline: relative change of the mean, its CI and significance."""

    baseline: Summary
    candidate: Summary
    change: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    bimodal: bool


def _array(values: Any, what: str = "values") -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: expected numbers ({e})") from None
    if x.size == 0:
        raise ConfigError(f"{what}: no samples")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{what}: non-finite sample at index {int(np.argmin(np.isfinite(x)))}")
    return x


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence {confidence!r}: must be between 0 and 1")
    if resamples < 1:
        raise ConfigError(f"resamples {resamples!r}: must be at least 1")


def boot_stats(
    x: np.ndarray, resamples: int, rng: np.random.Generator, *, stat: str = "mean"
) -> np.ndarray:
    """``stat`` ("mean" or "median") of ``resamples`` bootstrap resamples of x, vectorised in
    bounded chunks."""
    if stat not in ("mean", "median"):
        raise ConfigError(f"bootstrap statistic {stat!r}: expected 'mean' or 'median'")
    n = x.size
    out = np.empty(resamples)
    step = max(1, _CHUNK // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        sample = x[idx]
        out[start:stop] = sample.mean(axis=1) if stat == "mean" else np.median(sample, axis=1)
    return out


def _boot_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    return boot_stats(x, resamples, rng)


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Any, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    _check(confidence, resamples)
    x = _array(values)
    if x.size == 1:
        return float(x[0]), float(x[0])
    return interval(_boot_means(x, resamples, np.random.default_rng(seed)), confidence)


def iqr_outliers(x: np.ndarray) -> tuple[int, ...]:
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    return tuple(int(i) for i in np.flatnonzero((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr)))


def _robust_scale(x: np.ndarray, med: float) -> float:
    dev = np.abs(x - med)
    mad = float(np.median(dev))
    if mad > 0:
        return 1.4826 * mad
    return 1.253314 * float(np.mean(dev))


def mad_outliers(x: np.ndarray, threshold: float = 3.5) -> tuple[int, ...]:
    med = float(np.median(x))
    scale = _robust_scale(x, med)
    if scale == 0:
        return ()
    return tuple(int(i) for i in np.flatnonzero(np.abs(x - med) / scale > threshold))


def detect_warmup(x: np.ndarray, k: float = 3.5) -> int:
    n = x.size
    if n < 4:
        return 0
    steady = x[n // 2 :]
    m = float(np.median(steady))
    # The larger of the robust and the plain spread: MAD alone is noisy on ~20 samples and would
    # call an ordinary first sample a warm-up.
    s = max(
        1.4826 * float(np.median(np.abs(steady - m))),
        float(np.std(steady, ddof=1)),
        1e-9 * abs(m),
    )
    above = x[: n // 2] > m + k * s
    return int(np.argmin(above)) if not above.all() else int(above.size)


def bimodality_coefficient(x: np.ndarray) -> float:
    from scipy import stats as sst

    n = x.size
    if n < 4 or np.ptp(x) == 0:
        return float("nan")
    g = float(sst.skew(x, bias=False))
    k = float(sst.kurtosis(x, bias=False))
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _kde_modes(x: np.ndarray) -> int:
    """Number of well-separated density modes holding >= 15% (and >= 3) of the samples each."""
    n = x.size
    sd = float(np.std(x, ddof=1))
    q1, q3 = np.percentile(x, [25, 75])
    spread = min(sd, (q3 - q1) / 1.34) if q3 > q1 else sd
    if spread <= 0:
        return 1
    bw = 0.9 * spread * n**-0.2
    grid = np.linspace(x.min() - 3 * bw, x.max() + 3 * bw, 512)
    # Gaussian KDE evaluated directly (n x 512 is small for benchmark series).
    dens = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bw) ** 2).sum(axis=1)
    peaks = [i for i in range(1, grid.size - 1) if dens[i] >= dens[i - 1] and dens[i] > dens[i + 1]]
    if len(peaks) < 2:
        return 1
    # Merge peaks whose valley is not deep enough; keep the higher one.
    kept = [peaks[0]]
    for p in peaks[1:]:
        q = kept[-1]
        valley = float(dens[q : p + 1].min())
        if valley < 0.6 * min(dens[q], dens[p]):
            kept.append(p)
        elif dens[p] > dens[q]:
            kept[-1] = p
    if len(kept) < 2:
        return 1
    # Mass between valleys: each mode must hold at least 15% (and 3) of the samples.
    cuts = [float(grid[a + int(np.argmin(dens[a : b + 1]))]) for a, b in zip(kept, kept[1:])]
    counts = np.histogram(x, bins=[-np.inf, *cuts, np.inf])[0]
    return int(np.sum(counts >= max(0.15 * n, 3)))


def is_bimodal(x: np.ndarray) -> bool:
    if x.size < 10:
        return False
    bc = bimodality_coefficient(x)
    return bool(bc > 5 / 9 and _kde_modes(x) >= 2)


def summarize(
    values: Any, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Summary:
    """The Summary of a series of measurements in run order (rules: module docstring)."""
    _check(confidence, resamples)
    x = _array(values)
    n = x.size
    mean = float(np.mean(x))
    stddev = float(np.std(x, ddof=1)) if n > 1 else math.nan
    cv = stddev / mean if mean != 0 else math.nan
    lo, hi = bootstrap_ci(x, confidence=confidence, resamples=resamples, seed=seed)
    return Summary(
        n=n,
        mean=mean,
        median=float(np.median(x)),
        stddev=stddev,
        cv=cv,
        min=float(np.min(x)),
        max=float(np.max(x)),
        ci_low=lo,
        ci_high=hi,
        outliers=iqr_outliers(x),
        mad_outliers=mad_outliers(x),
        warmup=detect_warmup(x),
        bimodal=is_bimodal(x),
    )


def compare(
    baseline: Any,
    candidate: Any,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Candidate vs baseline: relative change of the mean, bootstrap CI, Mann–Whitney U test."""
    from scipy import stats as sst

    _check(confidence, resamples)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha {alpha!r}: must be between 0 and 1")
    b = _array(baseline, "baseline")
    c = _array(candidate, "candidate")
    sb = summarize(b, confidence=confidence, resamples=resamples, seed=seed)
    sc = summarize(c, confidence=confidence, resamples=resamples, seed=seed)
    rng = np.random.default_rng(seed)
    if sb.mean == 0:
        change = lo = hi = math.nan
    else:
        change = sc.mean / sb.mean - 1
        mb = _boot_means(b, resamples, rng)
        mc = _boot_means(c, resamples, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = mc / mb - 1
        ratios = ratios[np.isfinite(ratios)]
        lo, hi = interval(ratios, confidence) if ratios.size else (math.nan, math.nan)
    if np.ptp(np.concatenate([b, c])) == 0:
        p = 1.0  # all samples equal: no evidence of a difference (scipy would warn)
    else:
        p = float(sst.mannwhitneyu(b, c, alternative="two-sided").pvalue)
    significant = bool(p < alpha and (lo > 0 or hi < 0))
    return Comparison(sb, sc, change, lo, hi, p, significant, sb.bimodal or sc.bimodal)


SUMMARY_FIELDS = tuple(f.name for f in fields(Summary))


def summarize_frame(
    df: Any,
    by: Sequence[str] = ("variant", "benchmark", "measure"),
    *,
    value: str = "value",
    order: Any = None,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Any:
    """One row per group of a tidy frame with the Summary fields (and "unit" when the frame has it).

    Within a group the rows are taken in frame order (or sorted by the ``order`` column), which
    is the run order warm-up detection needs.
    """
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, value] if c not in df.columns]
    if missing:
        raise ConfigError(
            f"summary frame: missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, df.columns))})"
        )
    if order is not None:
        df = df.sort_values(order, kind="stable")
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key))
        if "unit" in group.columns and "unit" not in row:
            units = group["unit"].dropna()
            row["unit"] = units.iloc[0] if len(units) else None
        s = summarize(
            group[value].to_numpy(dtype=float),
            confidence=confidence,
            resamples=resamples,
            seed=seed,
        )
        row.update(asdict(s))
        rows.append(row)
    cols = [*by, *(["unit"] if "unit" in df.columns and "unit" not in by else []), *SUMMARY_FIELDS]
    return pd.DataFrame(rows, columns=cols)


COMPARISON_COLUMNS = (
    "benchmark",
    "measure",
    "unit",
    "change",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "bimodal",
    "baseline_mean",
    "candidate_mean",
    "baseline_median",
    "candidate_median",
    "verdict",
    "mdc",
    "higher_is_better",
)


def compare_frame(
    df: Any,
    baseline: str,
    candidate: str,
    *,
    by: str = "variant",
    measure: Any = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> Any:
    """benchrun.changes.compare() of ``candidate`` against ``baseline`` (values of column ``by``)
    for each benchmark and measure both have, in a tidy frame: one row each, columns
    COMPARISON_COLUMNS (change = median(candidate) / median(baseline) - 1, its bootstrap CI,
    Mann-Whitney p, verdict, minimum detectable change; bimodal when either side is). Non-finite
    values are left out; ``measure`` keeps only that measure. The one comparison behind
    `benchrun compare`, the report's tables and the comparison plot."""
    import pandas as pd

    from benchrun.changes import frames

    missing = [c for c in (by, "benchmark", "measure", "value") if c not in df.columns]
    if missing:
        raise ConfigError(
            f"results frame: missing column(s) {', '.join(missing)} "
            "(hint: pass the frame benchrun.results.load() returns)"
        )
    sel = df if measure is None else df[df["measure"] == measure]
    sel = sel[np.isfinite(sel["value"].astype(float))]
    if sel.empty:
        have = sorted(set(zip(df["benchmark"], df["measure"])))
        raise ConfigError(
            f"no values for benchmark (any) measure {measure or '(any)'} "
            f"(the frame has: {', '.join(f'{b}/{m}' for b, m in have) or 'nothing'})"
        )
    present = set(sel[by].unique())
    for name in (baseline, candidate):
        if name not in present:
            raise ConfigError(
                f"{by} '{name}': not in the results (have: {', '.join(sorted(map(str, present)))})"
            )
    a = sel[sel[by] == baseline]
    b = sel[sel[by] == candidate]
    try:
        t = frames.compare_frames(a, b, confidence=confidence, alpha=alpha, seed=seed)
    except ConfigError:  # no benchmark/measure in common: an empty table, as before
        return pd.DataFrame([], columns=list(COMPARISON_COLUMNS))
    bimodal = []
    for r in t.itertuples():
        side = [
            g.loc[(g["benchmark"] == r.benchmark) & (g["measure"] == r.measure), "value"]
            for g in (a, b)
        ]
        bimodal.append(any(is_bimodal(v.to_numpy(dtype=float)) for v in side))
    out = pd.DataFrame(
        {
            "benchmark": t["benchmark"],
            "measure": t["measure"],
            "unit": t["unit"],
            "change": t["change"],
            "ci_low": t["ci_low"],
            "ci_high": t["ci_high"],
            "p_value": t["p_value"],
            "significant": t["significant"],
            "bimodal": bimodal,
            "baseline_mean": t["mean_a"],
            "candidate_mean": t["mean_b"],
            "baseline_median": t["median_a"],
            "candidate_median": t["median_b"],
            "verdict": t["verdict"],
            "mdc": t["mdc"],
            "higher_is_better": t["higher_is_better"],
        }
    )
    return out.reindex(columns=list(COMPARISON_COLUMNS))
