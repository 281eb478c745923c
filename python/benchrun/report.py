"""The report of a results store (`benchrun report`, benchrun.cli.report): the per-variant summary
and the comparison of every variant with the baseline, as terminal tables, Markdown or HTML.

The comparison table is computed once (stats.compare_frame -> benchrun.changes.compare, as the
comparison plot and `benchrun compare`) and rendered by every format from the same cells. Change
points of each variant's series in run order (benchrun.changes.change_points) are listed in the
terminal and HTML reports. The HTML report is one self-contained file: the summary table, the
comparisons, the change points, and the plots (distribution, comparison, trend, series with
change points) embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import pandas as pd


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, td:nth-child(2), td:nth-child(3) { text-align: left; }
img { max-width: 100%; display: block; margin: 1em 0; }
.meta { color: #555; font-size: 0.9em; }
"""


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """stats.summarize_frame() per variant/benchmark/measure (and campaign when there are several),
    taking each group's runs in plan order."""
    from benchrun import stats

    by = ["variant", "benchmark", "measure"]
    if df["campaign"].nunique() > 1:
        by.insert(0, "campaign_name" if df["campaign_name"].nunique() > 1 else "campaign")
    return stats.summarize_frame(df, by=by, order="plan_index" if "plan_index" in df else None)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def host_lines(df: pd.DataFrame) -> list[str]:
    """One line per campaign on the host's measurement state its runs recorded (host_state_*
    columns, from Result.facts["host_state"]): "host: tuned (cpus 1) · noise 1.2% (3 h old)" or
    "host: NOT tuned in 3 of 3 runs: aslr, thp_enabled"; none when no run recorded it. The noise
    score is a fraction (0.012 = 1.2 %), the latest run's."""
    if "host_state_tuned" not in df:
        return []
    import json

    lines = []
    key = "campaign_name" if "campaign_name" in df else "campaign"
    many = df[key].nunique() > 1
    for name, runs in df.drop_duplicates("run").groupby(key, sort=True):
        runs = runs[runs["host_state_tuned"].map(_present)]
        if runs.empty:
            continue
        untuned = runs[runs["host_state_tuned"] != True]  # noqa: E712 (object column)
        if untuned.empty:
            cpus = sorted(
                {c for v in runs.get("host_state_cpus", []) if _present(v) for c in json.loads(v)}
            )
            text = "tuned" + (f" (cpus {','.join(map(str, cpus))})" if cpus else "")
        else:
            differs: dict[str, None] = {}
            for v in untuned.get("host_state_differs", []):
                differs.update(dict.fromkeys(json.loads(v) if _present(v) else ()))
            of = "" if len(untuned) == len(runs) else f" in {len(untuned)} of {len(runs)} runs"
            text = f"NOT tuned{of}: " + (", ".join(differs) or "unknown")
        if "host_state_noise_score" in runs:
            last = runs.sort_values("started").iloc[-1]
            score, age = last.get("host_state_noise_score"), last.get("host_state_noise_age_s")
            if _present(score):
                text += f" · noise {100 * float(score):.1f}%"
                text += f" ({_age(float(age))} old)" if _present(age) else ""
        lines.append(("host" + (f" ({name})" if many else "") + ": ") + text)
    return lines


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    return "–" if math.isnan(f) else f"{f:.4g}"


def _rows(s: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    keys = [c for c in ("campaign_name", "campaign", "variant", "benchmark", "measure") if c in s]
    head = keys + ["unit", "n", "mean", "median", "stddev", "CV%", "95% CI", "outliers", "bimodal"]
    rows = []
    for r in s.to_dict("records"):
        cv = r["cv"]
        rows.append(
            [str(r[k]) for k in keys]
            + [
                str(r.get("unit") or ""),
                str(int(r["n"])),
                _num(r["mean"]),
                _num(r["median"]),
                _num(r["stddev"]),
                "–" if cv is None or math.isnan(cv) else f"{100 * cv:.2f}",
                f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
                f"{len(r['outliers'])} IQR / {len(r['mad_outliers'])} MAD",
                "yes" if r["bimodal"] else "no",
            ]
        )
    return head, rows


def print_table(s: pd.DataFrame, title: str, file: Optional[TextIO] = None) -> None:
    """The summary as a rich table (plain text when ``file`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    out = file or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 200)
    head, rows = _rows(s)
    table = Table(title=title, title_justify="left")
    for h in head:
        numeric = h in ("n", "mean", "median", "stddev", "CV%", "95% CI")
        table.add_column(h, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*r, style="bold yellow" if r[-1] == "yes" else None)
    console.print(table)


def _variants(df: pd.DataFrame, baseline: Optional[str]) -> tuple[Optional[str], list[str]]:
    """(baseline, candidates): the baseline defaults to the first variant in name order."""
    variants = sorted(df["variant"].dropna().unique(), key=str)
    if len(variants) < 2:
        return None, []
    base = baseline if baseline is not None else variants[0]
    return base, [v for v in variants if v != base]


def comparisons(df: pd.DataFrame, baseline: Optional[str] = None) -> Optional[pd.DataFrame]:
    """Every other variant against ``baseline`` (stats.compare_frame), one row per candidate,
    benchmark and measure, columns baseline, candidate + stats.COMPARISON_COLUMNS; None when the
    frame holds fewer than two variants."""
    from benchrun import stats

    base, candidates = _variants(df, baseline)
    if base is None:
        return None
    tables = []
    for cand in candidates:
        t = stats.compare_frame(df, base, cand)
        t.insert(0, "candidate", cand)
        t.insert(0, "baseline", base)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


COMPARISON_HEAD = [
    "baseline",
    "candidate",
    "benchmark",
    "measure",
    "unit",
    "baseline median",
    "candidate median",
    "change",
    "95% CI",
    "p",
    "verdict",
    "MDC",
    "bimodal",
]


def comparison_rows(t: pd.DataFrame) -> list[list[str]]:
    """The display cells of a comparisons() table (COMPARISON_HEAD), for every format."""

    from benchrun.changes.frames import pct

    return [
        [
            str(r["baseline"]),
            str(r["candidate"]),
            str(r["benchmark"]),
            str(r["measure"]),
            "" if r["unit"] is None else str(r["unit"]),
            _num(r["baseline_median"]),
            _num(r["candidate_median"]),
            pct(r["change"]),
            f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
            _num(r["p_value"]),
            str(r["verdict"]),
            pct(r["mdc"]).lstrip("+"),
            "yes" if r["bimodal"] else "no",
        ]
        for r in t.to_dict("records")
    ]


def print_comparisons(t: pd.DataFrame, file: Optional[TextIO] = None) -> None:
    """The comparisons as a rich table (plain text when ``file`` is not a terminal); significant
    changes in bold."""
    from rich.console import Console
    from rich.table import Table

    out = file or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 200)
    base = ", ".join(sorted(map(str, t["baseline"].unique())))
    table = Table(
        title=f"compared with {base} (change of the median; significant: Mann-Whitney p < 0.05 "
        "and the 95% CI excludes 0; MDC: the smallest change these runs detect)",
        title_justify="left",
    )
    for h in COMPARISON_HEAD:
        left = h in ("baseline", "candidate", "benchmark", "measure", "unit")
        table.add_column(h, justify="left" if left else "right")
    for r in comparison_rows(t):
        table.add_row(*r, style="bold" if r[-3] != "no significant change" else None)
    console.print(table)


def markdown_report(
    s: pd.DataFrame,
    comparison_table: Optional[pd.DataFrame],
    host: Optional[list[str]] = None,
) -> str:
    """``host`` (host_lines()) first, then the summary table, then (given comparisons(), None with fewer than two variants) the
    comparison table, in Markdown, separated by a blank line."""
    from benchrun import export

    text = export.markdown_table(s)
    if host is not None:
        text = "".join(f"{line}\n" for line in host) + ("\n" if host else "") + text
    if comparison_table is not None:
        text += "\n" + export.markdown_cells(COMPARISON_HEAD, comparison_rows(comparison_table))
    return text


def change_point_lines(df: pd.DataFrame) -> list[str]:
    """One line per variant/benchmark/measure whose values, in run order, have change points
    (benchrun.changes.change_points): "slow sleep/latency: runs 0-11 | 12-23 (+5.1%)"."""
    from benchrun import changes

    sel = df[df["value"].map(lambda v: v is not None and math.isfinite(float(v)))]
    if "plan_index" in sel:
        sel = sel.sort_values("plan_index", kind="stable")
    lines = []
    for (variant, bench, meas), g in sel.groupby(["variant", "benchmark", "measure"], sort=True):
        v = g["value"].to_numpy(dtype=float)
        cps = changes.change_points(v)
        if not cps:
            continue
        bounds = [0, *cps, v.size]
        parts = []
        prev = 0.0
        for a, b in zip(bounds, bounds[1:]):
            med = float(pd.Series(v[a:b]).median())
            rel = "" if prev == 0 else f" ({100 * (med / prev - 1):+.1f}%)"
            parts.append(f"{a}-{b - 1}{rel}")
            prev = med
        lines.append(f"{variant} {bench}/{meas}: runs " + " | ".join(parts))
    return lines


def _figures(df: pd.DataFrame, baseline: Optional[str]) -> list[tuple[str, Any]]:
    from benchrun import plots

    figs: list[tuple[str, Any]] = [
        ("Distributions", plots.distribution(df, measure=None, kind="violin"))
    ]
    base, candidates = _variants(df, baseline)
    for cand in candidates:
        figs.append((f"{cand} vs {base}", plots.comparison(df, str(base), cand)))
    figs.append(("Trend over the campaign", plots.trend(df, measure=None)))
    figs.append(("Series and change points", plots.change_point_panels(df)))
    return figs


def _comparison_html(t: pd.DataFrame) -> str:
    out = ['<table class="benchrun-comparison"><thead><tr>']
    out += [f"<th>{html.escape(h)}</th>" for h in COMPARISON_HEAD]
    out.append("</tr></thead><tbody>")
    for cells in comparison_rows(t):
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_report(
    store: str,
    df: pd.DataFrame,
    s: pd.DataFrame,
    baseline: Optional[str],
    *,
    comparison_table: Optional[pd.DataFrame] = None,
) -> str:
    """The self-contained HTML report (plots embedded as base64 PNG); ``comparison_table`` is
    comparisons(df, baseline) when the caller has it already."""
    from benchrun import export, plots, results

    table = comparison_table if comparison_table is not None else comparisons(df, baseline)

    camps = results.campaigns(store)
    if df["campaign"].nunique() == 1:
        camps = camps[camps["id"] == df["campaign"].iloc[0]]
    figs = _figures(df, baseline)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>benchrun report: {html.escape(Path(store).name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>benchrun report: {html.escape(Path(store).name)}</h1>",
    ]
    for c in camps.to_dict("records"):
        created = dt.datetime.fromtimestamp(float(c["created"] or 0), dt.timezone.utc)
        host = ", ".join(f"{k[5:]}={c[k]}" for k in c if k.startswith("host_") and c[k] is not None)
        parts.append(
            f'<p class="meta">Campaign <b>{html.escape(str(c["name"]))}</b> '
            f"({html.escape(str(c['id']))}), created {created:%Y-%m-%d %H:%M:%S} UTC, "
            f"seed {html.escape(str(c['seed']))}, {c['done']} runs done, {c['failed']} failed, "
            f"benchrun {html.escape(str(c['benchrun_version']))}"
            + (f"<br>Host: {html.escape(host)}" if host else "")
            + "</p>"
        )
    for line in host_lines(df):
        parts.append(f'<p class="meta">{html.escape(line)}</p>')
    parts += ["<h2>Summary</h2>", export.html_table(s)]
    if table is not None:
        parts += ["<h2>Comparisons</h2>", _comparison_html(table)]
    cps = change_point_lines(df)
    parts.append("<h2>Change points (run order)</h2>")
    parts += [f"<p>{html.escape(line)}</p>" for line in cps] or ["<p>none</p>"]
    parts.append("<h2>Plots</h2>")
    for title, fig in figs:
        png = base64.b64encode(plots.to_png(fig)).decode("ascii")
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
