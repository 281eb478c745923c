"""`benchrun host check|tune|reset`: the host settings that affect measurement, tuning them for a
set of benchmark CPUs with a crash-safe journal, and restoring them (docs/cli.md, "host").

Registered by benchrun.cli.main (add_parsers); benchrun.host is imported when a command runs.
Other `host` subcommands add themselves to HOST_PARSERS (each gets the `host` subparsers).

Exit codes: check 0 tuned, 1 something settable differs; tune 0, 1 a change other than an IRQ's
affinity failed; reset 0 (also with nothing to reset); 125 a benchrun error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from benchrun.cli.noise import add_noise_parser
from benchrun.cli.partition import add_partition_parser


def _add_root(p: argparse.ArgumentParser) -> None:
    # A directory laid out like / (sys/, proc/): tests point the commands at fake trees.
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)


def _add_journal(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="the tune journal (default: $BENCHRUN_HOST_STATE/tune-journal.json, else "
        "/var/lib/benchrun/host/ as root, else $XDG_STATE_HOME/benchrun/host/)",
    )


def _cpus(text: Optional[str]) -> Optional[frozenset[int]]:
    if text is None:
        return None
    from benchrun.host.settings import parse_cpus

    return parse_cpus(text, "--cpus")


def add_check_parser(hsub: Any) -> None:
    p = hsub.add_parser(
        "check",
        help="show every setting that affects measurement: current, recommended, why; "
        "exit 1 when one that tune can set differs",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--cpus",
        metavar="LIST",
        help="benchmark CPUs to check for (default: the tune journal's, else all but the "
        "lowest-numbered CPU)",
    )
    p.add_argument("--all", action="store_true", help="list every row (IRQs and CPUs one by one)")
    _add_journal(p)
    _add_root(p)
    p.set_defaults(func=cmd_check)


def add_tune_parser(hsub: Any) -> None:
    p = hsub.add_parser(
        "tune",
        help="apply the recommendations for the benchmark CPUs (original values journaled first; "
        "`benchrun host reset` restores them)",
    )
    p.add_argument(
        "--cpus",
        metavar="LIST",
        help="benchmark CPUs, e.g. 2-7 (default: every online CPU but the lowest-numbered, which "
        "keeps the IRQs and housekeeping)",
    )
    p.add_argument(
        "--keep-smt",
        action="store_true",
        help="leave SMT on (by default tune turns it off when at least two CPUs stay online)",
    )
    p.add_argument(
        "--no-partition",
        action="store_true",
        help="do not make the benchmark CPUs the runs' CPU partition (`benchrun host partition`)",
    )
    p.add_argument("--json", action="store_true", help="print what changed as JSON")
    _add_journal(p)
    _add_root(p)
    p.set_defaults(func=cmd_tune)


def add_reset_parser(hsub: Any) -> None:
    p = hsub.add_parser("reset", help="restore the values the tune journal holds, remove it")
    p.add_argument("--json", action="store_true", help="print what was restored as JSON")
    _add_journal(p)
    _add_root(p)
    p.set_defaults(func=cmd_reset)


# Each adds one `host` subcommand (benchrun.cli.main builds only the `host` parser's tree).
HOST_PARSERS: list[Callable[[Any], None]] = [
    add_check_parser,
    add_tune_parser,
    add_reset_parser,
    add_noise_parser,
    add_partition_parser,
]


def add_parsers(sub: Any) -> None:
    """Adds `host` and its subcommands (HOST_PARSERS) to the CLI's subparsers."""
    p = sub.add_parser(
        "host",
        help="check, tune and reset the host settings that affect measurement; measure its noise",
        description="Benchmark-grade hosts: `check` lists the settings that affect measurement, "
        "`tune` applies what it can (journaling the originals first), `reset` restores them, "
        "`noise` measures the host's noise with fixed calibration workloads, `partition` gives "
        "benchmark runs CPUs of their own.",
    )
    hsub = p.add_subparsers(dest="host_command", metavar="COMMAND")
    hsub.required = True
    for add in HOST_PARSERS:
        add(hsub)


# --- commands ---------------------------------------------------------------------------------


def _group(settings: list[Any], every: bool) -> list[tuple[str, Any]]:
    """(label, setting) rows; without ``every``, per-CPU and per-IRQ rows with the same name,
    values and status collapse into one (label "irq_affinity (19 irqs)")."""
    if every:
        return [(f"{s.name} ({s.target})" if s.target else s.name, s) for s in settings]
    groups: dict[tuple[str, Any, Any, str], list[Any]] = {}
    for s in settings:
        groups.setdefault((s.name, s.current, s.recommended, s.status), []).append(s)
    rows = []
    for (name, *_), members in groups.items():
        targets = [m.target for m in members if m.target]
        if not targets:
            label = name
        elif len(targets) == 1:
            label = f"{name} ({targets[0]})"
        else:
            kind = targets[0].split()[0]
            label = f"{name} ({len(targets)} {kind}s)"
        rows.append((label, members[0]))
    return rows


_MARK = {
    "ok": "ok",
    "differs": "DIFFERS",
    "not settable": "differs*",
    "info": "",
    "unavailable": "-",
}


def cmd_check(args: argparse.Namespace) -> int:
    from benchrun.host import journal as jr
    from benchrun.host.settings import catalogue, format_cpus, vm

    journal_path = jr.default_journal() if args.journal is None else Path(args.journal)
    doc = jr.load(journal_path)
    cpus = _cpus(args.cpus)
    if cpus is None and doc is not None:
        cpus = frozenset(doc.get("cpus") or ()) or None
    plan, settings = catalogue(
        args.root, cpus, keep_smt=bool(doc and doc.get("keep_smt")), journal=doc
    )
    differs = sorted({s.name for s in settings if s.differs})
    if args.json:
        print(
            json.dumps(
                {
                    "tuned": not differs,
                    "differs": differs,
                    "cpus": list(plan.cpus),
                    "housekeeping": list(plan.housekeeping),
                    "journal": str(journal_path) if doc is not None else None,
                    "settings": [s.to_json() for s in settings],
                },
                indent=2,
            )
        )
        return 0 if not differs else 1
    from benchrun.host.settings import as_root

    where = vm(as_root(args.root))
    print(
        f"benchmark CPUs {format_cpus(plan.cpus)}, housekeeping {format_cpus(plan.housekeeping)}"
        + (f"; a VM ({where})" if where else "")
        + (f"; tuned by journal {journal_path}" if doc is not None else "")
    )
    rows = _group(settings, args.all)
    width = max(len(label) for label, _ in rows)
    cur_w = min(24, max(len(str(s.current)) for _, s in rows))
    print(f"{'STATUS':<9} {'SETTING':<{width}} {'CURRENT':<{cur_w}} {'RECOMMENDED':<12} WHY / NOTE")
    for label, s in rows:
        current = "unavailable" if s.current is None else s.current
        rec = "" if s.recommended is None else s.recommended
        why = s.why + (f" [{s.note}]" if s.note else "")
        print(f"{_MARK[s.status]:<9} {label:<{width}} {current:<{cur_w}} {rec:<12} {why}")
    if differs:
        print(f"\nNOT tuned: {', '.join(differs)} differ (benchrun host tune sets them)")
    else:
        print("\ntuned: every setting benchrun can set is as recommended")
    if any(s.status == "not settable" for s in settings):
        print("differs*: differs, but cannot be set here (see the note)")
    return 0 if not differs else 1


def _print_changes(title: str, changes: list[dict[str, str]]) -> None:
    for c in changes:
        target = f" ({c['target']})" if c["target"] else ""
        print(f"{title} {c['name']}{target}: {c['from']} -> {c['to']}")


def cmd_tune(args: argparse.Namespace) -> int:
    from benchrun.host.settings import format_cpus
    from benchrun.host.tune import tune

    report = tune(
        args.root,
        _cpus(args.cpus),
        args.journal,
        keep_smt=args.keep_smt,
        partition=False if args.no_partition else None,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0 if report.ok else 1
    if report.stale_reset is not None:
        print(f"reset the earlier journal first ({len(report.stale_reset.changed)} value(s))")
    _print_changes("set", report.changed)
    for f in report.failed:
        target = f" ({f['target']})" if f["target"] else ""
        print(f"refused {f['name']}{target}: {f['error']}", file=sys.stderr)
    for s in report.not_settable:
        print(f"cannot set {s.name}{f' ({s.target})' if s.target else ''}: {s.note}")
    if report.partition:
        p = report.partition
        note = f" ({p['note']})" if p.get("note") else ""
        print(f"CPU partition {p['path']}: CPUs {p['cpus']}, mode {p['mode']}{note}")
    print(
        f"host tuned for CPUs {format_cpus(report.cpus)} (housekeeping "
        f"{format_cpus(report.housekeeping)}): {len(report.changed)} change(s), "
        f"{len(report.failed)} refused; journal {report.journal} (benchrun host reset restores)"
    )
    return 0 if report.ok else 1


def cmd_reset(args: argparse.Namespace) -> int:
    from benchrun.host.tune import reset

    report = reset(args.root, args.journal)
    if args.json:
        print(json.dumps(report.to_json() if report else None, indent=2))
        return 0
    if report is None:
        print("nothing to reset: no tune journal")
        return 0
    _print_changes("restored", report.changed)
    print(f"host reset: {len(report.changed)} value(s) restored, journal {report.journal} removed")
    return 0
