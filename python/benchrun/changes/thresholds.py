"""Bencher's seven threshold models: is the newest point outside the limits its history sets?

Each model turns the history (the last ``window`` points before the newest, when a window is
set; at least ``min_sample`` of them, else no alert) and a boundary into a limit; the newest
point is an alert when it is above the upper limit or below the lower one. ``upper`` is for
measures where bigger is worse (latency), ``lower`` where smaller is worse (throughput); a model
needs at least one. The limits, as Bencher documents them (bencher.dev/docs/explanation/thresholds):

  static      upper/lower are the limits themselves.
  percentage  mean * (1 + upper), mean * (1 - lower); boundaries are fractions >= 0 (0.1 = 10 %).
  z_score     mean ± z * sd, z = the normal quantile of the boundary (0.5 <= boundary < 1).
  t_test      mean ± t * sd, t = Student's t quantile of the boundary with n - 1 degrees of freedom
              (Bencher's example: 25 points, mean 100, sd 10, boundary 0.977 -> 121.04).
  log_normal  exp(mu ± z * sigma) with mu, sigma the mean and sd of log(history) (all > 0), z the
              normal quantile of the boundary. (Bencher mirrors the upper limit around the mean
              for the lower one; the log-normal lower quantile is used here instead.)
  iqr         median ± boundary * IQR (boundary a multiplier >= 0).
  delta_iqr   median ± boundary * median * IQR(d), d = |x[i] - x[i-1]| / |x[i-1]| over the
              history: the spread of the relative point-to-point changes.

sd is the sample standard deviation (ddof = 1); quartiles are numpy's linear interpolation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from benchrun.errors import ConfigError


@functools.lru_cache(maxsize=1024)
def _quantile(dist: str, p: float, df: int = 0) -> float:
    """The normal ("norm") or Student's t ("t", df degrees of freedom) quantile, cached: scipy's
    distribution objects cost ~50 us a call, a replayed history calls it per point."""
    from scipy import stats as sst

    return float(sst.norm.ppf(p) if dist == "norm" else sst.t.ppf(p, df))


MODELS = ("static", "percentage", "z_score", "t_test", "log_normal", "iqr", "delta_iqr")
_QUANTILE_MODELS = ("z_score", "t_test", "log_normal")


@dataclass(frozen=True)
class ThresholdResult:
    """The check of one newest point: alert, the side it crossed and that limit."""

    alert: bool
    side: Optional[str]  # "upper" | "lower" | None
    boundary: Optional[float]  # the limit crossed (None without an alert)
    model: str
    value: float
    lower_limit: Optional[float]
    upper_limit: Optional[float]
    n: int  # history points used

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_boundary(model: str, name: str, b: Optional[float]) -> None:
    if b is None:
        return
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b):
        raise ConfigError(f"threshold {model}: {name} {b!r}: expected a finite number")
    if model in _QUANTILE_MODELS and not 0.5 <= b < 1:
        raise ConfigError(
            f"threshold {model}: {name} {b!r}: a confidence between 0.5 and 1 (0.99 = 99 %)"
        )
    if model in ("percentage", "iqr", "delta_iqr") and b < 0:
        raise ConfigError(f"threshold {model}: {name} {b!r}: must be >= 0")


class Threshold:
    """One model with its parameters; check(history, newest) -> ThresholdResult."""

    def __init__(
        self,
        model: str,
        *,
        window: Optional[int] = None,
        min_sample: Optional[int] = None,
        upper: Optional[float] = None,
        lower: Optional[float] = None,
    ) -> None:
        if model not in MODELS:
            raise ConfigError(f"threshold model {model!r}: expected one of {', '.join(MODELS)}")
        if upper is None and lower is None:
            raise ConfigError(f"threshold {model}: set an upper or a lower boundary (or both)")
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int) or window < 1
        ):
            raise ConfigError(f"threshold {model}: window {window!r}: a whole number >= 1")
        least = 0 if model == "static" else 2
        if min_sample is None:  # a static limit needs no history; the others two points at least
            min_sample = least
        if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < least:
            raise ConfigError(
                f"threshold {model}: min_sample {min_sample!r}: a whole number >= {least}"
            )
        _check_boundary(model, "upper", upper)
        _check_boundary(model, "lower", lower)
        self.model = model
        self.window = window
        self.min_sample = min_sample
        self.upper = upper
        self.lower = lower

    def __repr__(self) -> str:
        return (
            f"Threshold({self.model!r}, window={self.window}, min_sample={self.min_sample}, "
            f"upper={self.upper}, lower={self.lower})"
        )

    def limits(self, history: Any) -> tuple[Optional[float], Optional[float]]:
        """(lower_limit, upper_limit) from the history (already windowed); None where unset."""
        h = np.asarray(history, dtype=float)
        up, lo = self.upper, self.lower
        m = self.model
        if m == "static":
            return lo, up
        if m == "percentage":
            mean = float(np.mean(h))
            return (
                None if lo is None else mean * (1 - lo),
                None if up is None else mean * (1 + up),
            )
        if m in ("z_score", "t_test"):
            mean, sd = float(np.mean(h)), float(np.std(h, ddof=1))
            dist, df = ("norm", 0) if m == "z_score" else ("t", h.size - 1)
            return (
                None if lo is None else mean - _quantile(dist, lo, df) * sd,
                None if up is None else mean + _quantile(dist, up, df) * sd,
            )
        if m == "log_normal":
            if np.any(h <= 0):
                raise ConfigError(
                    "threshold log_normal: the history has values <= 0 (no logarithm)"
                )
            lg = np.log(h)
            mu, sigma = float(np.mean(lg)), float(np.std(lg, ddof=1))
            return (
                None if lo is None else math.exp(mu - _quantile("norm", lo) * sigma),
                None if up is None else math.exp(mu + _quantile("norm", up) * sigma),
            )
        q1, med, q3 = (float(v) for v in np.percentile(h, [25, 50, 75]))
        if m == "iqr":
            spread = q3 - q1
        else:  # delta_iqr
            prev = h[:-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.abs(np.diff(h)) / np.abs(prev)
            d = d[np.isfinite(d)]
            if d.size == 0:
                spread = 0.0
            else:
                d1, d3 = np.percentile(d, [25, 75])
                spread = abs(med) * float(d3 - d1)
        return (
            None if lo is None else med - lo * spread,
            None if up is None else med + up * spread,
        )

    def check(self, history: Any, newest: float) -> ThresholdResult:
        """Whether ``newest`` is an alert against ``history`` (the points before it, oldest first)."""
        try:
            h = np.asarray(history, dtype=float).ravel()
            v = float(newest)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"threshold {self.model}: expected numbers ({e})") from None
        if not math.isfinite(v) or not np.all(np.isfinite(h)):
            raise ConfigError(f"threshold {self.model}: non-finite value in the history or newest")
        if self.window is not None:
            h = h[-self.window :]
        if h.size < self.min_sample:
            return ThresholdResult(False, None, None, self.model, v, None, None, int(h.size))
        lo, up = self.limits(h)
        side, limit = None, None
        if up is not None and v > up:
            side, limit = "upper", up
        elif lo is not None and v < lo:
            side, limit = "lower", lo
        return ThresholdResult(side is not None, side, limit, self.model, v, lo, up, int(h.size))


def _limits_rows(th: Threshold, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised limits() of each row of ``rows`` (histories of equal length); NaN where unset."""
    k, n = rows.shape
    nan = np.full(k, np.nan)
    up, lo, m = th.upper, th.lower, th.model
    if m == "static":
        return (nan if lo is None else np.full(k, lo)), (nan if up is None else np.full(k, up))
    if m == "percentage":
        mean = rows.mean(axis=1)
        return (nan if lo is None else mean * (1 - lo)), (nan if up is None else mean * (1 + up))
    if m in ("z_score", "t_test"):
        mean, sd = rows.mean(axis=1), rows.std(axis=1, ddof=1)
        dist, df = ("norm", 0) if m == "z_score" else ("t", n - 1)
        return (
            nan if lo is None else mean - _quantile(dist, lo, df) * sd,
            nan if up is None else mean + _quantile(dist, up, df) * sd,
        )
    if m == "log_normal":
        if np.any(rows <= 0):
            raise ConfigError("threshold log_normal: the history has values <= 0 (no logarithm)")
        lg = np.log(rows)
        mu, sigma = lg.mean(axis=1), lg.std(axis=1, ddof=1)
        return (
            nan if lo is None else np.exp(mu - _quantile("norm", lo) * sigma),
            nan if up is None else np.exp(mu + _quantile("norm", up) * sigma),
        )
    q1, med, q3 = np.percentile(rows, [25, 50, 75], axis=1)
    if m == "iqr":
        spread = q3 - q1
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(np.diff(rows, axis=1)) / np.abs(rows[:, :-1])
        if not np.all(np.isfinite(d)):  # a zero in the history: per row, as check() does
            return _rows_by_check(th, rows)
        d1, d3 = np.percentile(d, [25, 75], axis=1)
        spread = np.abs(med) * (d3 - d1)
    return (nan if lo is None else med - lo * spread), (nan if up is None else med + up * spread)


def _rows_by_check(th: Threshold, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lims = [th.limits(r) for r in rows]
    return (
        np.array([np.nan if a is None else a for a, _ in lims], dtype=float),
        np.array([np.nan if b is None else b for _, b in lims], dtype=float),
    )


def scan(th: Threshold, values: Any) -> list[int]:
    """The indices t of ``values`` (oldest first) where th.check(values[:t], values[t]) alerts:
    the whole history replayed, vectorised over the points whose window is full."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"threshold {th.model}: non-finite value in the series")
    n = x.size
    if th.model == "static":  # the limits do not depend on the history
        if th.window is not None and th.window < th.min_sample:
            return []  # never enough history
        start = th.min_sample
        v = x[start:]
        hit = np.zeros(v.size, dtype=bool)
        if th.upper is not None:
            hit |= v > th.upper
        if th.lower is not None:
            hit |= v < th.lower
        return [int(i) + start for i in np.flatnonzero(hit)]
    out: list[int] = []
    w = th.window
    first_full = n if w is None else w  # from here on every history is the last w points
    for t in range(max(th.min_sample, 0), min(first_full, n)):
        if th.check(x[:t], x[t]).alert:
            out.append(t)
    if w is not None and n > w and w >= th.min_sample:
        rows = sliding_window_view(x, w)[: n - w]  # rows[i] = x[i : i + w], the history of i + w
        lo, up = _limits_rows(th, rows)
        v = x[w:]
        hit = (np.isfinite(up) & (v > up)) | (np.isfinite(lo) & (v < lo))
        out += [int(i) + w for i in np.flatnonzero(hit)]
    return out
