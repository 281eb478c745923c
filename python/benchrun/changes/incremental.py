"""ChangePointDetector: change points of a growing series, updated as points are appended.

An appended point can only move or add change points near the end of the history: the detector
keeps every change point up to the second-to-last one and re-runs the segmentation
(benchrun.changes.detect.segment) on the points after it, so each update costs the length of the
last two segments, not of the whole history (a history without any change is one segment: then
it is the whole history, ~13 ms at 10,000 points). The result equals change_points() of the same
series whenever the segmentation of the points before that boundary does not depend on what came
after it — which holds for the well-separated changes the detector is meant to find; a change
too small to be significant within the last two segments is not revisited by later points (in
exchange, an old change point never disappears when noise is appended, which alerts rely on).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from benchrun.changes import detect


class ChangePointDetector:
    """Incremental E-divisive means: append()/extend() return all change points so far."""

    def __init__(self, *, alpha: float = 0.01, min_size: int = 5) -> None:
        detect.check_args(alpha, min_size)
        self.alpha = alpha
        self.min_size = min_size
        self._buf = np.empty(64)
        self._n = 0
        self._cps: list[int] = []

    @property
    def values(self) -> np.ndarray:
        """The series so far (a read-only view)."""
        v = self._buf[: self._n]
        v.flags.writeable = False
        return v

    @property
    def change_points(self) -> list[int]:
        """Indices where a new segment begins, in order."""
        return list(self._cps)

    def __len__(self) -> int:
        return self._n

    def append(self, x: float) -> list[int]:
        """Adds one point and returns all change points so far."""
        return self.extend([x])

    def extend(self, xs: Iterable[Any]) -> list[int]:
        """Adds points (in order) and returns all change points so far."""
        new = detect.as_series(list(xs) if not isinstance(xs, np.ndarray) else xs)
        if new.size == 0:
            return self.change_points
        need = self._n + new.size
        if need > self._buf.size:
            buf = np.empty(max(need, 2 * self._buf.size))
            buf[: self._n] = self._buf[: self._n]
            self._buf = buf
        self._buf[self._n : need] = new
        self._n = need
        start = self._cps[-2] if len(self._cps) >= 2 else 0
        keep = [c for c in self._cps if c <= start and c > 0]
        tail = detect.segment(self._buf[start : self._n], self.alpha, self.min_size, start)
        self._cps = keep + [c for c in tail if c not in keep]
        return self.change_points
