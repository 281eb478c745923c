"""compare() per benchmark and measure of two tidy frames: the table `benchrun compare` prints
and the report's comparisons (benchrun.stats.compare_frame) are built from.

Direction: a measure is "higher is better" when it is named in ``higher_is_better`` or, by
default, when its unit is a rate (".../s", "1/s", "B/s", "ops/s", "Hz") or its name says
throughput ("throughput", "per_second", "ops", "bandwidth", "rate"); otherwise lower is better
(times, memory, counts of cycles or misses).
"""

from __future__ import annotations

import math
from typing import Any, Collection, Optional

import numpy as np

from benchrun.changes.compare import compare
from benchrun.errors import ConfigError

COLUMNS = (
    "benchmark",
    "measure",
    "unit",
    "median_a",
    "median_b",
    "mean_a",
    "mean_b",
    "change",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "verdict",
    "significant",
    "mdc",
    "n_a",
    "n_b",
    "higher_is_better",
)

_RATE_WORDS = ("throughput", "per_second", "per_sec", "bandwidth", "ops", "rate", "qps", "rps")


def higher_is_better(measure: str, unit: Optional[str], named: Collection[str] = ()) -> bool:
    """The direction of a measure (see the module docstring)."""
    if measure in named:
        return True
    u = (unit or "").strip().lower()
    if u.endswith("/s") or u in ("hz", "1/s"):
        return True
    m = measure.lower()
    return any(w in m for w in _RATE_WORDS)


def _unit(*groups: Any) -> Optional[str]:
    units = {u for g in groups for u in g["unit"].dropna().unique() if u}
    return units.pop() if len(units) == 1 else None


def compare_frames(
    a: Any,
    b: Any,
    *,
    higher: Collection[str] = (),
    confidence: float = 0.95,
    alpha: Optional[float] = None,
    seed: int = 0,
    benchmark: Optional[str] = None,
    measure: Optional[str] = None,
) -> Any:
    """One row per (benchmark, measure) both frames have (columns COLUMNS), sorted; ConfigError
    when they share none. Non-finite values are left out."""
    import pandas as pd

    for name, df in (("A", a), ("B", b)):
        missing = [c for c in ("benchmark", "measure", "value") if c not in df.columns]
        if missing:
            raise ConfigError(f"result set {name}: missing column(s) {', '.join(missing)}")
    frames = []
    for df in (a, b):
        df = df if "unit" in df.columns else df.assign(unit=None)
        df = df[np.isfinite(df["value"].astype(float))]
        if benchmark is not None:
            df = df[df["benchmark"] == benchmark]
        if measure is not None:
            df = df[df["measure"] == measure]
        frames.append(df)
    ga = dict(list(frames[0].groupby(["benchmark", "measure"], sort=True)))
    gb = dict(list(frames[1].groupby(["benchmark", "measure"], sort=True)))
    keys = sorted(set(ga) & set(gb), key=lambda k: (str(k[0]), str(k[1])))
    if not keys:

        def names(g: dict) -> str:
            return ", ".join(f"{k[0]}/{k[1]}" for k in sorted(g, key=str)) or "nothing"

        raise ConfigError(
            f"A and B have no benchmark/measure in common (A has: {names(ga)}; B has: {names(gb)})"
        )
    rows = []
    for key in keys:
        x, y = ga[key], gb[key]
        unit = _unit(x, y)
        hib = higher_is_better(str(key[1]), unit, higher)
        c = compare(
            x["value"].to_numpy(dtype=float),
            y["value"].to_numpy(dtype=float),
            higher_is_better=hib,
            confidence=confidence,
            alpha=alpha,
            seed=seed,
        )
        rows.append(
            {
                "benchmark": key[0],
                "measure": key[1],
                "unit": unit,
                "median_a": c.median_a,
                "median_b": c.median_b,
                "mean_a": float(x["value"].mean()),
                "mean_b": float(y["value"].mean()),
                "change": c.change,
                "ci_low": c.ci[0],
                "ci_high": c.ci[1],
                "test": c.test,
                "p_value": c.p_value,
                "verdict": c.verdict,
                "significant": c.significant,
                "mdc": c.mdc,
                "n_a": c.n_a,
                "n_b": c.n_b,
                "higher_is_better": hib,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def pct(v: Any) -> str:
    """A relative change as "+5.12%" ("–" when unknown)."""
    f = _float(v)
    return "–" if math.isnan(f) else f"{100 * f:+.2f}%"


def num(v: Any) -> str:
    """A value with 4 significant digits ("–" when unknown)."""
    f = _float(v)
    return "–" if math.isnan(f) else f"{f:.4g}"
