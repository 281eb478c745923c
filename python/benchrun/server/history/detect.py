"""The detection step of one series (benchrun.changes: part A's library) and the comparison that
decides a confirmation: pure functions over values, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from benchrun.errors import ConfigError

THRESHOLD_PARAMS = ("window", "min_sample", "upper", "lower")
CHANGE_POINT_PARAMS = ("alpha", "min_size")


@dataclass(frozen=True)
class Suspect:
    """A point the detection flags: its index in the series, the index of its base (the last
    point before the change) and what was found."""

    index: int
    base: Optional[int]
    kind: str  # "threshold:<model>" | "change_point"
    change: float  # relative change of the suspect vs its base (segment means for change points)
    detail: dict[str, Any]


def check_params(model: Optional[str], params: Any, change_points: bool) -> dict[str, Any]:
    """The configuration's parameters, checked by building the detectors once (ConfigError)."""
    if not isinstance(params, dict):
        raise ConfigError("alert config params: expected an object")
    allowed = set(CHANGE_POINT_PARAMS) | (set(THRESHOLD_PARAMS) if model else set())
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(
            f"alert config params: unknown {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    if not model and not change_points:
        raise ConfigError("alert config: set a threshold model, change_points, or both")
    if model:
        _threshold(model, params)
    if change_points:
        alpha, min_size = _cp_params(params)
        if not 0 < alpha < 0.5 or not 2 <= min_size <= 1000:
            raise ConfigError("alert config: alpha in (0, 0.5), min_size in [2, 1000]")
    return dict(params)


def _threshold(model: str, params: dict[str, Any]) -> Any:
    from benchrun.changes.thresholds import Threshold

    return Threshold(model, **{k: params[k] for k in THRESHOLD_PARAMS if k in params})


def _cp_params(params: dict[str, Any]) -> tuple[float, int]:
    alpha, min_size = params.get("alpha", 0.01), params.get("min_size", 5)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ConfigError("alert config params.alpha: expected a number")
    if isinstance(min_size, bool) or not isinstance(min_size, int):
        raise ConfigError("alert config params.min_size: expected an integer")
    return float(alpha), int(min_size)


def _rel(a: float, b: float) -> float:
    return b / a - 1 if a else math.inf if b > a else -math.inf if b < a else 0.0


def suspects(
    values: Sequence[float], model: Optional[str], params: dict[str, Any], change_points: bool
) -> list[Suspect]:
    """What the newest value (the last) sets off: a threshold crossing (the newest point is the
    suspect) and/or a change point that the newest value created (its first point is the
    suspect: E-divisive means needs min_size points after a change to see it)."""
    out: list[Suspect] = []
    n = len(values)
    if n < 2:
        return out
    if model:
        res = _threshold(model, params).check(list(values[:-1]), values[-1])
        if res.alert:
            out.append(
                Suspect(
                    n - 1,
                    n - 2,
                    f"threshold:{model}",
                    _rel(values[-2], values[-1]),
                    {"threshold": res.to_json()},
                )
            )
    if change_points:
        from benchrun.changes import change_points as cps

        alpha, min_size = _cp_params(params)
        if n >= 2 * min_size:
            before = set(cps(list(values[:-1]), alpha=alpha, min_size=min_size))
            after = cps(list(values), alpha=alpha, min_size=min_size)
            # A change point the newest value only moved (within min_size) is not a new one.
            new = [k for k in after if all(abs(k - c) >= min_size for c in before)]
            if new:
                k = max(new)
                prev = max([c for c in after if c < k], default=0)
                nxt = min([c for c in after if c > k], default=n)
                a = sum(values[prev:k]) / (k - prev)
                b = sum(values[k:nxt]) / (nxt - k)
                out.append(
                    Suspect(
                        k,
                        k - 1,
                        "change_point",
                        _rel(a, b),
                        {
                            "change_point": {
                                "index": k,
                                "before_mean": a,
                                "after_mean": b,
                                "alpha": alpha,
                                "min_size": min_size,
                            }
                        },
                    )
                )
    return out


def compare(base: Sequence[float], head: Sequence[float]) -> dict[str, Any]:
    """head vs base (benchrun.changes.compare, JSON-ready): median change, its bootstrap CI,
    Mann-Whitney U p-value, verdict and minimum detectable change."""
    from benchrun.changes import compare as _compare

    return _compare(list(base), list(head)).to_json()


def confirms(result: dict[str, Any], change: float) -> bool:
    """The re-run shows a significant change in the direction the detection saw."""
    moved = result.get("change")
    if result.get("verdict") == "no significant change" or not isinstance(moved, (int, float)):
        return False
    return (moved > 0) == (change > 0)
