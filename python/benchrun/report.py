"""`benchrun report STORE`: a summary of a results store as a terminal table, Markdown or HTML.

The HTML report is one self-contained file: the summary table, the comparison of every variant
with the baseline, and the plots (distribution, comparison, trend) embedded as base64 PNG.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import math
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import pandas as pd

from benchrun.errors import ConfigError

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, td:nth-child(2), td:nth-child(3) { text-align: left; }
img { max-width: 100%; display: block; margin: 1em 0; }
.meta { color: #555; font-size: 0.9em; }
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds the `report` subcommand to the CLI's subparsers; it runs cmd_report()."""
    p = sub.add_parser(
        "report",
        help="summarize a results store: terminal table, Markdown, or an HTML report with plots",
    )
    p.add_argument("store", metavar="STORE", help="results store (SQLite file) of a campaign")
    p.add_argument("--campaign", metavar="ID", help="only this campaign (id or name)")
    p.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with the plots"
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print a Markdown table instead of the terminal table",
    )
    p.add_argument(
        "--baseline",
        metavar="VARIANT",
        help="variant the others are compared with (default: the first in name order)",
    )
    p.add_argument(
        "--include-warmup", action="store_true", help="count warm-up runs in the statistics"
    )
    p.set_defaults(func=cmd_report)
    return p


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """stats.summarize_frame() per variant/benchmark/measure (and campaign when there are several),
    taking each group's runs in plan order."""
    from benchrun import stats

    by = ["variant", "benchmark", "measure"]
    if df["campaign"].nunique() > 1:
        by.insert(0, "campaign_name" if df["campaign_name"].nunique() > 1 else "campaign")
    return stats.summarize_frame(df, by=by, order="plan_index" if "plan_index" in df else None)


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


def _figures(df: pd.DataFrame, baseline: Optional[str]) -> tuple[list[tuple[str, Any]], Any]:
    from benchrun import plots

    figs: list[tuple[str, Any]] = []
    comparisons = []
    figs.append(("Distributions", plots.distribution(df, measure=None, kind="violin")))
    variants = sorted(df["variant"].dropna().unique(), key=str)
    if len(variants) > 1:
        base = baseline if baseline is not None else variants[0]
        for cand in variants:
            if cand == base:
                continue
            figs.append((f"{cand} vs {base}", plots.comparison(df, base, cand)))
            t = plots.comparisons(df, base, cand)
            t.insert(0, "candidate", cand)
            t.insert(0, "baseline", base)
            comparisons.append(t)
    figs.append(("Trend over the campaign", plots.trend(df, measure=None)))
    table = pd.concat(comparisons, ignore_index=True) if comparisons else None
    return figs, table


def _comparison_html(t: pd.DataFrame) -> str:
    head = ["baseline", "candidate", "benchmark", "measure", "change", "95% CI", "p", "significant",
            "bimodal"]
    out = ['<table class="benchrun-comparison"><thead><tr>']
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in t.to_dict("records"):
        cells = [r["baseline"], r["candidate"], r["benchmark"], r["measure"],
                 f"{100 * r['change']:+.2f}%",
                 f"[{100 * r['ci_low']:+.2f}%, {100 * r['ci_high']:+.2f}%]",
                 _num(r["p_value"]), "yes" if r["significant"] else "no",
                 "yes" if r["bimodal"] else "no"]
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_report(store: str, df: pd.DataFrame, s: pd.DataFrame, baseline: Optional[str]) -> str:
    """The self-contained HTML report (plots embedded as base64 PNG)."""
    from benchrun import export, plots, results

    camps = results.campaigns(store)
    if df["campaign"].nunique() == 1:
        camps = camps[camps["id"] == df["campaign"].iloc[0]]
    figs, comparisons = _figures(df, baseline)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>benchrun report: {html.escape(Path(store).name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>benchrun report: {html.escape(Path(store).name)}</h1>",
    ]
    for c in camps.to_dict("records"):
        created = dt.datetime.fromtimestamp(float(c["created"] or 0), dt.timezone.utc)
        host = ", ".join(
            f"{k[5:]}={c[k]}" for k in c if k.startswith("host_") and c[k] is not None
        )
        parts.append(
            f'<p class="meta">Campaign <b>{html.escape(str(c["name"]))}</b> '
            f"({html.escape(str(c['id']))}), created {created:%Y-%m-%d %H:%M:%S} UTC, "
            f"seed {html.escape(str(c['seed']))}, {c['done']} runs done, {c['failed']} failed, "
            f"benchrun {html.escape(str(c['benchrun_version']))}"
            + (f"<br>Host: {html.escape(host)}" if host else "")
            + "</p>"
        )
    parts += ["<h2>Summary</h2>", export.html_table(s)]
    if comparisons is not None:
        parts += ["<h2>Comparisons</h2>", _comparison_html(comparisons)]
    parts.append("<h2>Plots</h2>")
    for title, fig in figs:
        png = base64.b64encode(plots.to_png(fig)).decode("ascii")
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    """`benchrun report`: load, summarize, print; with --html also write the HTML report."""
    from benchrun import export, results

    store = str(args.store)
    df = results.load(store, args.campaign, include_warmup=args.include_warmup)
    if df.empty:
        where = f"campaign '{args.campaign}' in " if args.campaign else ""
        raise ConfigError(f"results store '{store}': {where}no completed run has metrics to report")
    if args.baseline is not None and args.baseline not in set(df["variant"]):
        raise ConfigError(
            f"--baseline '{args.baseline}': no such variant "
            f"(have: {', '.join(sorted(map(str, df['variant'].unique())))})"
        )
    out_file = None
    if args.html:
        try:  # created before any work, so a bad path fails fast
            out_file = open(args.html, "w", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"open '{args.html}': {e.strerror}") from e
    try:
        s = summary(df)
        if args.markdown:
            sys.stdout.write(export.markdown_table(s))
        else:
            names = ", ".join(sorted(map(str, df["campaign_name"].dropna().unique())))
            print_table(s, f"{names or store}: {df['run'].nunique()} runs")
        if out_file is not None:
            out_file.write(html_report(store, df, s, args.baseline))
    except BaseException:
        if out_file is not None:
            out_file.close()
            Path(args.html).unlink(missing_ok=True)
        raise
    if out_file is not None:
        out_file.close()
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
