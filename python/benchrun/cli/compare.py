"""`benchrun compare A B`: is B faster or slower than A, per benchmark and measure (like pyperf's
compare_to): both medians, the relative change of the median with its bootstrap CI, the
Mann-Whitney U p-value, the verdict and the minimum detectable change at these sample sizes.

A and B are result sets (benchrun.resultsets): FILE.json[,FILE.json...], STORE:VARIANT, or
job:ID[,job:ID...]. Registered by benchrun.cli.main (add_parsers); pandas and scipy are imported
only when the command runs. Exit status 0, or with --fail-on-slower 1 when any verdict is
"slower" (for CI), 125 on an error (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from benchrun.cli.common import add_server_options


def add_parsers(sub: Any) -> None:
    """Adds the `compare` subcommand; it runs cmd_compare()."""
    p = sub.add_parser(
        "compare",
        help="compare two result sets (JSON result files, STORE:VARIANT, job:ID): medians, "
        "change with its CI, p-value, verdict, minimum detectable change",
    )
    p.add_argument(
        "a", metavar="A", help="baseline: FILE.json[,FILE...], STORE:VARIANT or job:ID[,job:ID...]"
    )
    p.add_argument("b", metavar="B", help="candidate, in the same forms as A")
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON")
    p.add_argument("--campaign", metavar="ID", help="STORE:VARIANT sides: only this campaign")
    p.add_argument("--benchmark", metavar="NAME", help="only this benchmark")
    p.add_argument("--measure", metavar="NAME", help="only this measure")
    p.add_argument(
        "--higher-is-better",
        metavar="MEASURE",
        action="append",
        default=[],
        help="a measure where bigger is better (repeatable; rates such as B/s and throughput "
        "measures are recognised by their unit or name)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        metavar="C",
        help="confidence of the interval and the test (default 0.95: significant at p < 0.05)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--fail-on-slower",
        action="store_true",
        help="exit with status 1 when any verdict is 'slower'",
    )
    add_server_options(p, help_server="job server URL for job:ID sides (default $BENCHRUN_SERVER)")
    p.set_defaults(func=cmd_compare)


def render(table: Any, a: str, b: str, confidence: float = 0.95) -> str:
    """The text table of compare_frames()'s rows."""
    from benchrun.changes.frames import num as _num
    from benchrun.changes.frames import pct

    head = [
        "benchmark",
        "measure",
        "A median",
        "B median",
        "change",
        f"{100 * confidence:g}% CI",
        "p",
        "verdict",
        "MDC",
        "n A/B",
    ]
    rows = []
    for r in table.to_dict("records"):
        unit = f" {r['unit']}" if r["unit"] else ""
        rows.append(
            [
                str(r["benchmark"]),
                str(r["measure"]),
                _num(r["median_a"]) + unit,
                _num(r["median_b"]) + unit,
                pct(r["change"]),
                f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
                _num(r["p_value"]),
                str(r["verdict"]),
                pct(r["mdc"]).lstrip("+"),
                f"{r['n_a']}/{r['n_b']}",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [f"A: {a}", f"B: {b}", ""]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()
    lines.append(fmt(head))
    lines.append(fmt(["-" * w for w in widths]))
    lines += [fmt(r) for r in rows]
    lines.append("")
    lines.append(
        "change: median(B) / median(A) - 1 with its bootstrap CI; p: Mann-Whitney U (two-sided); "
        "significant when p < 1 - confidence and the CI excludes 0; MDC: the smallest change "
        "these sample sizes detect (80 % power)"
    )
    return "\n".join(lines) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    from benchrun import resultsets
    from benchrun.changes import frames
    from benchrun.errors import ConfigError

    if not 0 < args.confidence < 1:
        raise ConfigError(f"--confidence {args.confidence}: must be between 0 and 1 (0.95 = 95 %)")

    def client() -> Any:
        from benchrun.cli.common import client_from_args

        return client_from_args(args)

    a = resultsets.load(args.a, campaign=args.campaign, client=client)
    b = resultsets.load(args.b, campaign=args.campaign, client=client)
    table = frames.compare_frames(
        a,
        b,
        higher=args.higher_is_better,
        confidence=args.confidence,
        seed=args.seed,
        benchmark=args.benchmark,
        measure=args.measure,
    )
    if args.json:
        out = []
        for r in table.to_dict("records"):
            doc = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            doc["ci"] = [doc.pop("ci_low"), doc.pop("ci_high")]
            doc["confidence"] = args.confidence
            out.append(doc)
        json.dump({"a": args.a, "b": args.b, "comparisons": out}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(table, args.a, args.b, args.confidence))
    if args.fail_on_slower and (table["verdict"] == "slower").any():
        return 1
    return 0
