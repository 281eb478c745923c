"""change_points(): E-divisive means change point detection (binary segmentation).

Each segment (at first the whole series) is split where the energy statistic of its ranks is
largest (benchrun.changes.energy); the split is kept when the Mann-Whitney statistic there is
significant against the maximum over all splits under no change (benchrun.changes.significance),
and both halves are then searched in turn. Working on ranks makes the search and the test blind
to the noise distribution: outliers count as one rank, and log-normal or any skewed noise is the
same as normal noise (ranks do not change under a monotone transform).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sst

from benchrun.changes import energy, significance
from benchrun.errors import ConfigError


def check_args(alpha: float, min_size: int) -> None:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha {alpha!r}: must be between 0 and 1")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ConfigError(f"min_size {min_size!r}: must be a whole number >= 2")


def as_series(values: Any) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"series: expected numbers ({e})") from None
    if x.ndim != 1:
        raise ConfigError(f"series: expected a 1-d sequence of numbers, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ConfigError(f"series: non-finite value {x[bad[0]]} at index {int(bad[0])}")
    return x


def best_split(x: np.ndarray, min_size: int) -> tuple[int, float] | None:
    """(t, p) of the most likely split of x, or None when x is too short or constant."""
    m = x.size
    if m < 2 * min_size:
        return None
    r = sst.rankdata(x)
    q = energy.split_statistic(r, min_size)
    if not np.any(np.isfinite(q)) or np.nanmax(q) <= 0:
        return None
    t = int(np.nanargmax(q))
    z = float(significance.z_scores(x, min_size)[t])
    return t, significance.p_value(z, m, min_size)


def segment(x: np.ndarray, alpha: float, min_size: int, offset: int = 0) -> list[int]:
    """Change points of x (absolute indices: offset + t), sorted."""
    found: list[int] = []
    stack = [(0, x.size)]
    while stack:
        lo, hi = stack.pop()
        split = best_split(x[lo:hi], min_size)
        if split is None or split[1] >= alpha:
            continue
        t = lo + split[0]
        found.append(offset + t)
        stack += [(lo, t), (t, hi)]
    return sorted(found)


def change_points(values: Any, *, alpha: float = 0.01, min_size: int = 5) -> list[int]:
    """Indices where a new segment begins (each segment holds at least min_size points), by
    E-divisive means on ranks with a significance level ``alpha`` per split."""
    check_args(alpha, min_size)
    return segment(as_series(values), alpha, min_size)
