"""`benchrun report STORE`: the per-variant summary and the comparison with a baseline variant, as
a terminal table or Markdown, and optionally a self-contained HTML report with plots.

Registered by benchrun.cli.main (add_parsers); pandas, the statistics and the plots are
imported only when the command runs (benchrun.report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchrun.errors import ConfigError


def add_parsers(sub: Any) -> None:
    """Adds the `report` subcommand to the CLI's subparsers; it runs cmd_report()."""
    p = sub.add_parser(
        "report",
        help="summarize a results store and compare its variants: terminal table, Markdown, "
        "or an HTML report with plots",
    )
    p.add_argument("store", metavar="STORE", help="results store (SQLite file) of a campaign")
    p.add_argument("--campaign", metavar="ID", help="only this campaign (id or name)")
    p.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with the plots"
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print Markdown tables instead of the terminal tables",
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


def cmd_report(args: argparse.Namespace) -> int:
    """Load, summarize, compare, print; with --html also write the HTML report."""
    from benchrun import report, results

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
        s = report.summary(df)
        cmp = report.comparisons(df, args.baseline)
        host = report.host_lines(df)
        if args.markdown:
            sys.stdout.write(report.markdown_report(s, cmp, host))
        else:
            names = ", ".join(sorted(map(str, df["campaign_name"].dropna().unique())))
            for line in host:
                print(line)
            report.print_table(s, f"{names or store}: {df['run'].nunique()} runs")
            if cmp is not None:
                report.print_comparisons(cmp)
            cps = report.change_point_lines(df)
            if cps:
                print("change points in run order (E-divisive, alpha 0.01):")
                for line in cps:
                    print(f"  {line}")
        if out_file is not None:
            out_file.write(report.html_report(store, df, s, args.baseline, comparison_table=cmp))
    except BaseException:
        if out_file is not None:
            out_file.close()
            Path(args.html).unlink(missing_ok=True)
        raise
    if out_file is not None:
        out_file.close()
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
