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
    """stats.compare() of ``candidate`` against ``baseline`` for each benchmark and measure both
    have: columns benchmark, measure, unit, change, ci_low, ci_high, p_value, significant,
    bimodal, baseline_mean, candidate_mean (change = candidate/baseline - 1)."""
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
    confidence interval; significant changes (stats.compare) are drawn filled and starred."""
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
        if not np.isfinite(change[i]):  # a zero baseline mean: no relative change exists
            ax.annotate(
                "n/a (baseline mean 0)",
                (0, y[i]),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
                color="0.4",
            )
            continue
        color = ("tab:red" if change[i] > 0 else "tab:green") if sig else "0.4"
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
    ax.set_xlabel(f"change of the mean, {candidate} vs {baseline} (%), {confidence:.0%} CI")
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
