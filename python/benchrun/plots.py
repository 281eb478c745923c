"""Plots of a results frame (benchrun.results.load): distributions, variant comparisons, trends.

Every function returns a matplotlib Figure built without pyplot's global figure list, so nothing
is shown or kept alive behind the caller's back: a notebook displays the returned figure, a script
saves it (fig.savefig). With no display and no MPLBACKEND, matplotlib is switched to Agg.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

import matplotlib

if (
    "matplotlib.pyplot" not in sys.modules
    and not os.environ.get("MPLBACKEND")
    and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
):
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from benchrun import stats  # noqa: E402
from benchrun.errors import ConfigError  # noqa: E402

KINDS = ("violin", "box", "strip")
_PANEL_W, _PANEL_H = 5.0, 3.6


def _require(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(
            f"results frame: missing column(s) {', '.join(missing)} "
            "(hint: pass the frame benchrun.results.load() returns)"
        )


def _select(df: pd.DataFrame, benchmark: Optional[str], measure: Optional[str]) -> pd.DataFrame:
    _require(df, ["benchmark", "measure", "value"])
    sel = df
    if measure is not None:
        sel = sel[sel["measure"] == measure]
    if benchmark is not None:
        sel = sel[sel["benchmark"] == benchmark]
    sel = sel[np.isfinite(sel["value"].astype(float))]
    if sel.empty:
        have = sorted(set(zip(df["benchmark"], df["measure"])))
        raise ConfigError(
            f"no values for benchmark {benchmark or '(any)'} measure {measure or '(any)'} "
            f"(the frame has: {', '.join(f'{b}/{m}' for b, m in have) or 'nothing'})"
        )
    return sel


def _unit(sel: pd.DataFrame) -> str:
    if "unit" not in sel.columns:
        return ""
    units = sel["unit"].dropna().unique()
    return f" ({units[0]})" if len(units) == 1 and units[0] else ""


def _grid(n: int, cols: int = 3) -> tuple[Figure, list[Any]]:
    ncols = min(n, cols)
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(_PANEL_W * ncols, _PANEL_H * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def distribution(
    df: pd.DataFrame,
    benchmark: Optional[str] = None,
    measure: Optional[str] = "wall_time",
    kind: str = "violin",
    by: str = "variant",
) -> Figure:
    """The distribution of ``measure`` per ``by`` (variant), one panel per benchmark (or just
    ``benchmark``); kind "violin", "box" or "strip", with the individual runs overlaid."""
    if kind not in KINDS:
        raise ConfigError(f"plot kind '{kind}': choose from {', '.join(KINDS)}")
    _require(df, [by])
    sel = _select(df, benchmark, measure)
    order = sorted(sel[by].dropna().unique(), key=str)
    panels = list(sel.groupby(["benchmark", "measure"], sort=True))
    fig, axes = _grid(len(panels))
    for ax, ((bench, meas), group) in zip(axes, panels):
        if kind == "violin":
            sns.violinplot(
                data=group, x=by, y="value", order=order, ax=ax, inner=None, cut=0, color="0.85"
            )
        elif kind == "box":
            sns.boxplot(
                data=group, x=by, y="value", order=order, ax=ax, color="0.85", showfliers=False
            )
        sns.stripplot(
            data=group,
            x=by,
            y="value",
            order=order,
            ax=ax,
            hue=by,
            hue_order=order,
            size=4,
            jitter=0.15,
            legend=False,
        )
        ax.set_title(f"{bench}: {meas}")
        ax.set_xlabel(by)
        ax.set_ylabel(f"{meas}{_unit(group)}")
    fig.suptitle(f"Distribution of {measure or 'each measure'} by {by}")
    return fig


def comparisons(
    df: pd.DataFrame,
    baseline: str,
    candidate: str,
    *,
    by: str = "variant",
    measure: Optional[str] = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """stats.compare_frame() (benchrun.changes.compare) of ``candidate`` against ``baseline`` for
    each benchmark and measure both have: columns stats.COMPARISON_COLUMNS (change =
    median(candidate) / median(baseline) - 1)."""
    return stats.compare_frame(
        df,
        baseline,
        candidate,
        by=by,
        measure=measure,
        alpha=alpha,
        confidence=confidence,
        seed=seed,
    )


def comparison(
    df: pd.DataFrame,
    baseline: str,
    candidate: str,
    *,
    by: str = "variant",
    measure: Optional[str] = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> Figure:
    """Relative change of ``candidate`` vs ``baseline`` per benchmark/measure, with its bootstrap
    confidence interval; significant changes (benchrun.changes.compare) are drawn filled and
    starred, red when slower, green when faster."""
    table = comparisons(
        df,
        baseline,
        candidate,
        by=by,
        measure=measure,
        alpha=alpha,
        confidence=confidence,
        seed=seed,
    )
    if table.empty:
        raise ConfigError(f"'{baseline}' and '{candidate}' share no benchmark/measure to compare")
    labels = [f"{b} / {m}" for b, m in zip(table["benchmark"], table["measure"])]
    y = np.arange(len(table))
    change = table["change"].to_numpy(dtype=float) * 100
    lo = table["ci_low"].to_numpy(dtype=float) * 100
    hi = table["ci_high"].to_numpy(dtype=float) * 100
    fig = Figure(figsize=(7.5, 1.2 + 0.5 * len(table)), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="0.5", lw=1)
    for i, sig in enumerate(table["significant"]):
        if not np.isfinite(change[i]):  # a zero baseline median: no relative change exists
            ax.annotate(
                "n/a (baseline median 0)",
                (0, y[i]),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
                color="0.4",
            )
            continue
        worse = table["verdict"].iloc[i] == "slower"
        color = ("tab:red" if worse else "tab:green") if sig else "0.4"
        err = np.nan_to_num([[max(change[i] - lo[i], 0)], [max(hi[i] - change[i], 0)]])
        ax.errorbar(
            change[i],
            y[i],
            xerr=err,
            fmt="o",
            color=color,
            capsize=4,
            mfc=color if sig else "white",
        )
        note = f"{change[i]:+.1f}%" + (" *" if sig else "")
        if table["bimodal"].iloc[i]:
            note += " (bimodal)"
        ax.annotate(
            note,
            (hi[i] if np.isfinite(hi[i]) else change[i], y[i]),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"change of the median, {candidate} vs {baseline} (%), {confidence:.0%} CI")
    ax.set_title(f"{candidate} vs {baseline}  (* significant, Mann–Whitney p < {alpha:g})")
    ax.margins(x=0.25)
    return fig


def trend(
    df: pd.DataFrame,
    measure: Optional[str] = "wall_time",
    x: str = "started",
    *,
    benchmark: Optional[str] = None,
    by: str = "variant",
) -> Figure:
    """``measure`` against ``x`` (default: the run's start time) per ``by``, one panel per
    benchmark: drift of the machine over a campaign shows as a slope shared by all variants."""
    _require(df, [x, by])
    sel = _select(df, benchmark, measure).copy()
    if x == "started":
        sel[x] = pd.to_datetime(sel[x], unit="s")
    sel = sel.sort_values(x, kind="stable")
    order = sorted(sel[by].dropna().unique(), key=str)
    panels = list(sel.groupby(["benchmark", "measure"], sort=True))
    fig, axes = _grid(len(panels), cols=2)
    for ax, ((bench, meas), group) in zip(axes, panels):
        sns.lineplot(
            data=group,
            x=x,
            y="value",
            hue=by,
            hue_order=order,
            ax=ax,
            marker="o",
            estimator=None,
            sort=True,
        )
        ax.set_title(f"{bench}: {meas}")
        ax.set_ylabel(f"{meas}{_unit(group)}")
        ax.set_xlabel("run start" if x == "started" else x)
        if x == "started":
            for label in ax.get_xticklabels():
                label.set_rotation(30)
                label.set_horizontalalignment("right")
    fig.suptitle(f"{measure or 'Each measure'} over {'time' if x == 'started' else x}")
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for reports)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def series(
    values: Sequence[float],
    *,
    change_points: Optional[Sequence[int]] = None,
    alerts: Optional[Sequence[Any]] = None,
    x: Optional[Sequence[Any]] = None,
    title: str = "",
    ylabel: str = "value",
    ax: Any = None,
) -> Figure:
    """A history (one benchmark/measure, oldest first) with its change points and alerts marked.

    ``change_points`` are indices where a segment begins (default: computed with
    benchrun.changes.change_points); each segment's median is drawn as a step, and each change
    point as a dashed line labelled with the relative change of the median. ``alerts`` are
    indices, or mappings with "index" (and optionally "state": open / confirmed / dismissed,
    "label"), drawn as triangles (filled when confirmed, hollow when dismissed). ``x`` labels the
    points (commits, dates); default the index. With ``ax`` the plot goes there (its figure is
    returned)."""
    from benchrun import changes

    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ConfigError("series plot: expected a non-empty 1-d sequence of numbers")
    cps = list(changes.change_points(v)) if change_points is None else sorted(change_points)
    for c in cps:
        if not 0 < int(c) < v.size:
            raise ConfigError(f"series plot: change point {c} outside 1..{v.size - 1}")
    if ax is None:
        fig = Figure(figsize=(9, 3.4), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    idx = np.arange(v.size)
    ax.plot(idx, v, ".", color="0.35", ms=4, label="value")
    bounds = [0, *[int(c) for c in cps], v.size]
    meds = [float(np.median(v[a:b])) for a, b in zip(bounds, bounds[1:])]
    for (a, b), m in zip(zip(bounds, bounds[1:]), meds):
        ax.hlines(m, a - 0.5, b - 0.5, color="tab:blue", lw=2)
    for k, c in enumerate(cps):
        ax.axvline(int(c) - 0.5, color="tab:red", ls="--", lw=1)
        rel = meds[k + 1] / meds[k] - 1 if meds[k] else float("nan")
        ax.annotate(
            f"{100 * rel:+.1f}%" if np.isfinite(rel) else "change",
            (int(c) - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            color="tab:red",
            fontsize=8,
        )
    for a in alerts or ():
        info: dict[str, Any] = {"index": a}
        if isinstance(a, dict):
            info = {str(k): v for k, v in a.items()}
        i = int(info["index"])
        if not 0 <= i < v.size:
            raise ConfigError(f"series plot: alert index {i} outside 0..{v.size - 1}")
        state = str(info.get("state", "open"))
        face = {"confirmed": "tab:orange", "dismissed": "white"}.get(state, "tab:orange")
        ax.plot(i, v[i], "v", ms=9, mec="tab:orange", mfc=face, label=f"alert ({state})")
        if isinstance(a, dict) and a.get("label"):
            ax.annotate(
                str(a["label"]),
                (i, v[i]),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    if len(uniq) > 1:
        ax.legend(uniq.values(), uniq.keys(), fontsize=8, loc="best")
    if x is not None:
        xs = list(x)
        if len(xs) != v.size:
            raise ConfigError(f"series plot: {len(xs)} x labels for {v.size} points")
        step = max(1, v.size // 12)
        ax.set_xticks(idx[::step], [str(t) for t in xs[::step]], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("point (oldest first)" if x is None else "")
    ax.set_title(title or f"{len(cps)} change point{'s' if len(cps) != 1 else ''}")
    return fig


def change_point_panels(
    df: pd.DataFrame, *, by: str = "variant", order: str = "plan_index", max_panels: int = 12
) -> Figure:
    """Each variant's values of each benchmark/measure in run order with its change points
    (benchrun.changes), one panel per benchmark/measure: a shift inside a campaign (the host
    changed state, a cache warmed) shows as a change point within a variant."""
    from benchrun import changes

    _require(df, [by])
    sel = df[np.isfinite(df["value"].astype(float))]
    if order in sel:
        sel = sel.sort_values(order, kind="stable")
    panels = list(sel.groupby(["benchmark", "measure"], sort=True))[:max_panels]
    fig, axes = _grid(len(panels), cols=2)
    for ax, ((bench, meas), group) in zip(axes, panels):
        for k, (name, g) in enumerate(sorted(group.groupby(by), key=lambda t: str(t[0]))):
            v = g["value"].to_numpy(dtype=float)
            color = f"C{k % 10}"
            ax.plot(np.arange(v.size), v, ".-", color=color, ms=3, lw=0.6, label=str(name))
            for c in changes.change_points(v):
                ax.axvline(c - 0.5, color=color, ls="--", lw=1)
        ax.set_title(f"{bench}: {meas}")
        ax.set_ylabel(f"{meas}{_unit(group)}")
        ax.set_xlabel("run (in order, per variant)")
        ax.legend(fontsize=7)
    fig.suptitle("Run order; dashed: change points", fontsize=10)
    return fig
