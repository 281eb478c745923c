"""`benchrun history`: the job server's history and alerts (docs/history.md).

    benchrun history series [--branch B] [--testbed T] [--benchmark X] [--measure M] [--json]
    benchrun history show SERIES [--csv | --json]       one series as a tidy table
    benchrun history testbeds [--json]
    benchrun history upload BMF.json --branch B --commit C --testbed NAME [--rerun JOB.json]
    benchrun history config set --branch B --measure M [--benchmark X] [--model MODEL
        --upper U --lower L --window N --min-sample N] [--change-points --alpha A --min-size N]
        [--repetitions N]
    benchrun history config list | delete ID
    benchrun history alerts [--state S] [--json]
    benchrun history alert ID [--json] | dismiss ID | confirm ID

Server, token and project come from --server/--token-file/--project or $BENCHRUN_SERVER,
$BENCHRUN_TOKEN, $BENCHRUN_PROJECT, as for the job commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchrun.cli.common import add_server_options as _add_server
from benchrun.cli.common import client_from_args as _client
from benchrun.cli.common import project_from_args as _project
from benchrun.errors import ConfigError

MODELS = ("static", "percentage", "z_score", "t_test", "log_normal", "iqr", "delta_iqr")
ALERT_STATES = ("confirming", "open", "confirmed", "dismissed", "noise")


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _common(p: argparse.ArgumentParser) -> None:
    _add_server(p)
    p.add_argument("--project", metavar="ID", help="project (default $BENCHRUN_PROJECT)")


def add_parsers(sub: Any) -> None:
    top = sub.add_parser("history", help="result history, alert configurations and alerts")
    hs = top.add_subparsers(dest="history_command", metavar="ACTION")
    hs.required = True

    p = hs.add_parser("series", help="list series (branch x testbed x benchmark x measure)")
    _common(p)
    for f in ("branch", "testbed", "benchmark", "measure"):
        p.add_argument(f"--{f}", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_series)

    p = hs.add_parser("show", help="one series as a tidy table")
    _common(p)
    p.add_argument("series", metavar="SERIES")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--csv", action="store_true")
    g.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = hs.add_parser("testbeds", help="list the project's testbeds")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_testbeds)

    p = hs.add_parser("upload", help="file BMF results of a commit")
    _common(p)
    p.add_argument("file", metavar="BMF.json", help="a BMF document or a list of them ('-' stdin)")
    p.add_argument("--branch", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--testbed", required=True, help="testbed name (or @FILE of host facts)")
    p.add_argument(
        "--rerun", metavar="JOB.json", help="a job submission that reproduces these results"
    )
    p.set_defaults(func=cmd_upload)

    p = hs.add_parser("config", help="alert configurations: set, list, delete")
    _common(p)
    p.add_argument("action", choices=["set", "list", "delete"])
    p.add_argument("id", nargs="?", help="with delete: the configuration id")
    p.add_argument("--branch")
    p.add_argument("--measure")
    p.add_argument("--benchmark", help="default: every benchmark of the branch")
    p.add_argument("--model", choices=MODELS, help="a threshold model")
    p.add_argument("--upper", type=float, help="upper boundary (bigger is worse)")
    p.add_argument("--lower", type=float, help="lower boundary (smaller is worse)")
    p.add_argument("--window", type=int)
    p.add_argument("--min-sample", type=int)
    p.add_argument("--change-points", action="store_true", help="E-divisive change points")
    p.add_argument("--alpha", type=float)
    p.add_argument("--min-size", type=int)
    p.add_argument("--repetitions", type=int, help="confirmation runs per side")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)

    p = hs.add_parser("alerts", help="list alerts, newest first")
    _common(p)
    p.add_argument("--state", choices=ALERT_STATES)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alerts)

    for name, helptext in (
        ("alert", "show an alert with its confirmation"),
        ("dismiss", "dismiss an alert"),
        ("confirm", "acknowledge an open alert as a real change"),
    ):
        p = hs.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("id", metavar="ALERT")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_alert, alert_action=name)


def _read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{what} '{path}': {e.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{what} '{path}': not JSON ({e})") from None


def cmd_series(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rows = c.series(
            _project(args),
            branch=args.branch,
            testbed=args.testbed,
            benchmark=args.benchmark,
            measure=args.measure,
        )
    if args.json:
        _print(rows)
        return 0
    print(f"{'SERIES':36}  {'BRANCH':16}  {'TESTBED':20}  {'BENCHMARK':20}  {'MEASURE':14}  N")
    for s in rows:
        print(
            f"{s['id']:36}  {s['branch'][:16]:16}  {(s.get('testbed_name') or '')[:20]:20}  "
            f"{s['benchmark'][:20]:20}  {s['measure'][:14]:14}  {s['points']}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.csv:
            sys.stdout.write(c.series_table(_project(args), args.series, "csv"))
            return 0
        doc = c.series_table(_project(args), args.series)
    if args.json:
        _print(doc)
        return 0
    s = doc["series"]
    tb = (doc.get("testbed") or {}).get("name", s["testbed"])
    unit = f" ({s['unit']})" if s.get("unit") else ""
    print(f"{s['branch']} / {tb} / {s['benchmark']} / {s['measure']}{unit}")
    print(f"{'REVISION':20}  {'VALUE':>14}  {'N':>4}  {'SOURCE':6}  FLAGS")
    for r in doc["rows"]:
        flags = ("noise " if r["noise"] else "") + (
            "alert:" + ",".join(a[:8] for a in r["alerts"]) if r["alerts"] else ""
        )
        print(f"{r['revision'][:20]:20}  {r['value']:14.6g}  {r['n']:4}  {r['source']:6}  {flags}")
    return 0


def cmd_testbeds(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rows = c.testbeds(_project(args))
    if args.json:
        _print(rows)
        return 0
    for t in rows:
        f = t["facts"]
        desc = ", ".join(
            str(f[k]) for k in ("cpu_model", "kernel", "backend") if f.get(k) is not None
        )
        print(f"{t['name']:24}  {t['fingerprint'][:12]}  {desc}")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    results = _read_json(args.file, "BMF file")
    testbed: Any = args.testbed
    if testbed.startswith("@"):
        testbed = _read_json(testbed[1:], "testbed facts file")
    rerun = _read_json(args.rerun, "--rerun file") if args.rerun else None
    with _client(args) as c:
        doc = c.upload(
            _project(args),
            results,
            branch=args.branch,
            commit=args.commit,
            testbed=testbed,
            rerun=rerun,
        )
    _print(doc)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    project = _project(args)
    with _client(args) as c:
        if args.action == "list":
            rows = c.alert_configs(project)
            if args.json:
                _print(rows)
            for r in [] if args.json else rows:
                what = " + ".join(
                    x for x in (r["model"], "change points" if r["change_points"] else "") if x
                )
                print(
                    f"{r['id']}  {r['branch']} / {r['benchmark'] or '*'} / {r['measure']}: "
                    f"{what} {json.dumps(r['params'])}"
                )
            return 0
        if args.action == "delete":
            if not args.id:
                raise ConfigError("history config delete: the configuration ID is required")
            _print(c.delete_alert_config(project, args.id))
            return 0
        if not args.branch or not args.measure:
            raise ConfigError("history config set: --branch and --measure are required")
        params = {
            k: v
            for k, v in (
                ("upper", args.upper),
                ("lower", args.lower),
                ("window", args.window),
                ("min_sample", args.min_sample),
                ("alpha", args.alpha),
                ("min_size", args.min_size),
            )
            if v is not None
        }
        _print(
            c.set_alert_config(
                project,
                branch=args.branch,
                measure=args.measure,
                benchmark=args.benchmark,
                model=args.model,
                params=params,
                change_points=args.change_points,
                repetitions=args.repetitions,
            )
        )
    return 0


def _alert_line(a: dict[str, Any]) -> str:
    conf = a.get("confirmation") or {}
    cmp_ = conf.get("comparison") or {}
    change = a.get("detail", {}).get("change")
    seen = f"{100 * change:+.1f} %" if isinstance(change, (int, float)) else "?"
    rerun = ""
    if cmp_:
        rerun = f"  re-run {100 * cmp_['change']:+.1f} % p={cmp_['p_value']:.3g}"
    return (
        f"{a['id']}  {a['state']:10}  {a['kind']:18}  "
        f"{a.get('base_revision') or '-'}..{a['head_revision']}  {seen}{rerun}"
    )


def cmd_alerts(args: argparse.Namespace) -> int:
    with _client(args) as c:
        rows = c.alerts(_project(args), state=args.state, limit=args.limit)
    if args.json:
        _print(rows)
    else:
        for a in rows:
            print(_alert_line(a))
    return 0


def cmd_alert(args: argparse.Namespace) -> int:
    project = _project(args)
    with _client(args) as c:
        if args.alert_action == "dismiss":
            a = c.dismiss_alert(project, args.id)
        elif args.alert_action == "confirm":
            a = c.confirm_alert(project, args.id)
        else:
            a = c.alert(project, args.id)
    if args.json or args.alert_action == "alert":
        _print(a) if args.json else print(_alert_line(a))
        if not args.json:
            for j in (a.get("confirmation") or {}).get("jobs", []):
                print(f"  {j['side']:4}  job {j['id']}")
    else:
        print(a["state"])
    return 0
