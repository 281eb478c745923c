"""`benchrun host noise`: measure this host's noise with the calibration workloads and store the
figure (benchrun.noise). add_noise_parser(host_sub) adds `noise` under `benchrun host`
(benchrun.cli.host lists it in HOST_PARSERS). benchrun.noise (and with it scipy) is imported only
when the command runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_HELP = "measure this host's noise with fixed calibration workloads and store the figure"


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the stored document as JSON")
    p.add_argument(
        "--duration",
        type=float,
        default=6.0,
        metavar="S",
        help="seconds of measurement in all, shared by the workloads (default 6)",
    )
    p.add_argument(
        "--cpus",
        metavar="LIST",
        help="benchmark CPUs to run on, e.g. 1-3 (default: every CPU benchrun may use)",
    )
    p.add_argument(
        "--backend",
        choices=("sandbox",),
        default="sandbox",
        help="where the workloads run (default sandbox)",
    )
    p.add_argument(
        "--workloads",
        default="cpu,mem,syscall",
        metavar="LIST",
        help="comma-separated: cpu, mem, syscall (default all three)",
    )
    p.add_argument("--store", metavar="DIR", help="image store (default: benchrun's)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write the figure here instead of <state dir>/noise.json ($BENCHRUN_HOST_STATE)",
    )
    p.add_argument("--no-save", action="store_true", help="measure and print only")
    p.set_defaults(func=cmd_noise)


def add_noise_parser(host_sub: Any) -> None:
    """Adds `noise` to the subparsers of `benchrun host`."""
    _configure(host_sub.add_parser("noise", help=_HELP, description=_HELP))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def cmd_noise(args: argparse.Namespace) -> int:
    from benchrun import noise

    cpus = noise.parse_cpu_list(args.cpus) if args.cpus else None
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    run = noise.measure(
        duration=args.duration,
        cpus=cpus,
        backend=args.backend,
        store=args.store,
        workloads=workloads,
    )
    doc = run.doc
    path = None if args.no_save else noise.save(doc, args.output)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    print(f"host {doc['host']}, CPUs {doc['cpus']}, {doc['duration_s']:g}s of measurement")
    print(
        f"{'WORKLOAD':<9} {'N':>5} {'MEDIAN':>10} {'CV':>8} {'SPREAD':>8} "
        f"{'MDC@10':>8} {'MDC@30':>8} {'MDC@100':>8}"
    )
    for name, w in doc["workloads"].items():
        mdc = w["mdc"]
        print(
            f"{name:<9} {w['n']:>5} {w['median_s'] * 1e3:>8.3f}ms {_pct(w['cv']):>8} "
            f"{_pct(w['spread']):>8} {_pct(mdc['10']):>8} {_pct(mdc['30']):>8} "
            f"{_pct(mdc['100']):>8}"
        )
    print(f"score (RMS of the CVs): {_pct(doc['score'])}")
    print("MDC@N: the smallest change N repetitions per side detect at 95% confidence, 80% power")
    if path:
        print(f"stored in {path}", file=sys.stderr)
    return 0
