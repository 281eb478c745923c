"""The job commands of the CLI: `benchrun serve` and `benchrun agent` (the two ends of Bencher's
runner protocol), and the client side: submit, jobs, job, cancel, and project/token/runner
administration. Server and credentials come from --server/--token-file or $BENCHRUN_SERVER and
$BENCHRUN_TOKEN (a token never has to appear on a command line)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from benchrun.cli.common import add_server_options as _add_server
from benchrun.cli.common import client_from_args as _client
from benchrun.cli.common import project_from_args as _project
from benchrun.cli.run_options import JOB_OPTIONS, add_run_options, run_options, with_flag
from benchrun.errors import ConfigError
from benchrun.jobs.status import STATUS_NAMES, status_name

# Only light modules above: every `benchrun` invocation builds these parsers. The client, the
# server and the agent are imported by the commands that use them.


def _when(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _status(job: dict[str, Any]) -> str:
    return status_name(job.get("status"))


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _iterations(text: str) -> Any:
    """--iterations: a whole number or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number or auto") from None


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the job server (REST API + runner channel)")
    p.add_argument(
        "--db",
        default="sqlite:///" + str(Path.cwd() / "benchrun-jobs.db"),
        metavar="URL",
        help="sqlite:///PATH (default ./benchrun-jobs.db) or " "postgresql://USER@HOST:PORT/DB",
    )
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--heartbeat-timeout", type=float, default=90.0, metavar="S")
    p.add_argument(
        "--grace",
        type=float,
        default=60.0,
        metavar="S",
        help="hard timeout margin beyond a job's own timeout",
    )
    p.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="where the first start writes the admin token (mode 0600)",
    )
    p.add_argument(
        "--max-message",
        default="64m",
        metavar="SIZE",
        help="largest WebSocket message accepted (default 64m)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a registry reached over plain HTTP (loopback ones always are)",
    )
    p.add_argument(
        "--allow-registry",
        action="append",
        default=[],
        metavar="[PROJECT=]HOST[:PORT]",
        help="a registry jobs may name: every project's, or PROJECT's (name or id); "
        "repeatable. None by default: submissions are refused until one is allowed",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("agent", help="serve jobs from a job server (Bencher runner protocol)")
    p.add_argument(
        "--server",
        default=os.environ.get("BENCHRUN_SERVER"),
        metavar="URL",
        required=not os.environ.get("BENCHRUN_SERVER"),
    )
    p.add_argument("--runner", required=True, metavar="NAME", help="runner name or UUID")
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help="file holding the runner key (default $BENCHRUN_RUNNER_KEY)",
    )
    p.add_argument("--once", action="store_true", help="run one job, then exit")
    p.add_argument(
        "--once-wait",
        type=float,
        metavar="S",
        help="with --once: give up (exit 0) when no job came within S seconds",
    )
    p.add_argument(
        "--backend",
        default="sandbox",
        metavar="NAME",
        help="backend for jobs whose spec names none (default sandbox; "
        "benchrun.backends() lists them)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=0.0,
        metavar="S",
        help="on SIGTERM, let the current job finish for up to S seconds, then cancel",
    )
    p.add_argument("--poll-timeout", type=int, default=55, metavar="S")
    p.add_argument("--max-message", default="64m", metavar="SIZE")
    p.add_argument("--store", metavar="DIR", help="image store (default: benchrun's cache)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]")
    p.add_argument(
        "--tune",
        action="store_true",
        help="tune the host for benchmarking while the agent runs (benchrun host tune), reset it "
        "when the agent exits",
    )
    p.add_argument(
        "--tune-cpus",
        metavar="LIST",
        help="with --tune: the benchmark CPUs (default: all but the lowest-numbered)",
    )
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("submit", help="submit a job to the job server")
    _add_server(p)
    p.add_argument("--project", metavar="ID", help="project (default $BENCHRUN_PROJECT)")
    # The run options a job spec carries, with `benchrun run`'s flags (--timeout default 60 s,
    # --vcpus default 1: the runner's CPUs, not this machine's).
    add_run_options(
        p, only=JOB_OPTIONS + ("instructions", "counters")
    )  # spec.instructions: benchrun's
    p.add_argument(
        "--iterations",
        type=_iterations,
        default=1,
        metavar="N|auto",
        help="run N times, or auto: as often as the runner's noise figure says --detect needs",
    )
    p.add_argument(
        "--detect",
        type=float,
        metavar="FRACTION",
        help="with --iterations auto: the relative change to detect (0.02 = 2 %%)",
    )
    p.add_argument("--allow-failure", action="store_true")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument(
        "--branch", metavar="NAME", help="file the results in the history (with --commit)"
    )
    p.add_argument("--commit", metavar="REV", help="the commit the image was built from")
    p.add_argument("--benchmark", metavar="NAME", help="benchmark name (default: the image's)")
    p.add_argument(
        "--metrics",
        choices=["run", "bmf"],
        default="run",
        help="history values: the run metrics (default) or BMF printed on stdout",
    )
    p.add_argument("--wait", action="store_true", help="wait for the job and print its results")
    p.add_argument("--json", action="store_true")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(func=cmd_submit, submit_parser=p)

    p = sub.add_parser("jobs", help="list a project's jobs")
    _add_server(p)
    p.add_argument("--project", metavar="ID")
    p.add_argument("--status", choices=list(STATUS_NAMES))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("job", help="show a job (and its results)")
    _add_server(p)
    p.add_argument("id")
    p.add_argument("--wait", action="store_true", help="wait until it ends")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_job)

    p = sub.add_parser("cancel", help="cancel a job")
    _add_server(p)
    p.add_argument("id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("project", help="create or list projects (admin)")
    _add_server(p)
    p.add_argument("action", choices=["create", "list"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("token", help="create a user API token (admin)")
    _add_server(p)
    p.add_argument("name")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--project", action="append", default=[], metavar="ID")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "runner", help="register runners, list them, rotate keys, delete them (admin)"
    )
    _add_server(p)
    p.add_argument("action", choices=["create", "list", "rotate", "delete"])
    p.add_argument("name", nargs="?")
    p.add_argument("--project", action="append", default=[], metavar="ID")
    p.set_defaults(func=cmd_runner)


def cmd_submit(args: argparse.Namespace) -> int:
    from benchrun import options as o

    given = run_options(args)
    try:
        env = dict(e.split("=", 1) for e in o.parse_env(given.get("env")))
        timeout = math.ceil(o.seconds(given.get("timeout", 60), "timeout"))
        cpus = o.whole(given.get("vcpus", 1), "vcpus")
        memory = o.parse_memory(given["memory"]) if "memory" in given else None
        backend = given.get("backend")
        if backend is not None and backend not in o.backends():
            raise ConfigError(f"backend '{backend}': unknown (choose {', '.join(o.backends())})")
    except ConfigError as e:  # a bad option value is a usage error: nothing was submitted
        args.submit_parser.error(with_flag(str(e)))
    command = list(args.command)
    if command[:1] == ["--"]:
        command.pop(0)
    with _client(args) as c:
        job = c.submit(
            args.image,
            command or None,
            project=_project(args),
            entrypoint=given.get("entrypoint"),
            env=env,
            timeout=timeout,
            outputs=given.get("outputs", []),
            iterations=args.iterations,
            detect=args.detect,
            allow_failure=args.allow_failure,
            cpus=cpus,
            memory=memory,
            backend=backend,
            priority=args.priority,
            history=_history(args),
            instructions=o.BY_NAME["instructions"].parse(given["instructions"], "instructions")
            if "instructions" in given
            else None,
            counters=given.get("counters"),
        )
        if args.wait:
            job = c.wait(job["id"])
            job["results"] = c.results(job["id"])
        if args.json:
            _print(job)
        else:
            print(job["id"])
            if args.wait:
                _print_results(job)
    return 0 if not args.wait or _status(job) == "completed" else 1


def _history(args: argparse.Namespace) -> Any:
    if args.branch is None and args.commit is None:
        return None
    if not (args.branch and args.commit):
        raise ConfigError("submit: --branch and --commit go together")
    h = {"branch": args.branch, "commit": args.commit, "metrics": args.metrics}
    if args.benchmark:
        h["benchmark"] = args.benchmark
    return h


def _print_results(job: dict[str, Any]) -> None:
    print(
        f"status {_status(job)}" + (f": {job['error']}" if job.get("error") else ""),
        file=sys.stderr,
    )
    for i, it in enumerate(job.get("results") or []):
        wall = ((it.get("metrics") or {}).get("wall_time") or {}).get("value")
        took = f" in {wall:.4g} s" if isinstance(wall, (int, float)) else ""
        print(f"--- iteration {i + 1}: exit {it.get('exit_code')}{took}", file=sys.stderr)
        sys.stdout.write(it.get("stdout", ""))
        sys.stderr.write(it.get("stderr", ""))
        for path, text in sorted((it.get("output") or {}).items()):
            print(f"--- {path} ({len(text)} chars)", file=sys.stderr)


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as c:
        jobs = c.jobs(_project(args), status=args.status, limit=args.limit)
    if args.json:
        _print(jobs)
        return 0
    print(f"{'JOB':36}  {'STATUS':9}  {'CREATED':19}  IMAGE")
    for j in jobs:
        image = (j.get("config") or {}).get("image") or (j.get("config") or {}).get("digest", "")
        print(f"{j['id']:36}  {_status(j):9}  {_when(j.get('created')):19}  {image}")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from benchrun.client import TERMINAL

    with _client(args) as c:
        job = c.wait(args.id) if args.wait else c.job(args.id)
        if _status(job) in TERMINAL:
            job["results"] = c.results(args.id)
    if args.json:
        _print(job)
    else:
        for k in ("id", "project", "runner"):
            print(f"{k:9} {job.get(k)}")
        print(f"{'status':9} {_status(job)}" + (f" ({job['reason']})" if job.get("reason") else ""))
        for k in ("created", "claimed", "started", "ended"):
            print(f"{k:9} {_when(job.get(k))}")
        if job.get("results") is not None:
            _print_results(job)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        job = c.cancel(args.id)
    print(_status(job))
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "create":
            if not args.name:
                raise ConfigError("project create: a NAME is required")
            _print(c.create_project(args.name))
        else:
            _print(c.projects())
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    with _client(args) as c:
        print(c.create_token(args.name, admin=args.admin, projects=args.project))
    return 0


def cmd_runner(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "list":
            _print(c.runners())
        elif not args.name:
            raise ConfigError(f"runner {args.action}: a NAME is required")
        elif args.action == "create":
            runner, key = c.create_runner(args.name, args.project)
            print(json.dumps(runner), file=sys.stderr)
            print(key)
        elif args.action == "delete":
            _print(c.delete_runner(args.name))
        else:
            print(c.rotate_key(args.name))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from benchrun.server.app import run_server
    from benchrun.server.config import ServerConfig

    return run_server(
        ServerConfig.from_options(
            db=args.db,
            listen=args.listen,
            heartbeat_timeout=args.heartbeat_timeout,
            grace=args.grace,
            admin_token_file=args.admin_token_file,
            max_message=args.max_message,
            insecure_registries=args.insecure_registry,
            allow_registries=args.allow_registry,
        )
    )


def cmd_agent(args: argparse.Namespace) -> int:
    from benchrun.agent import configure_logging, load_key, make_config, run_agent
    from benchrun.options import parse_size

    configure_logging(verbose=bool(getattr(args, "verbose", False)))
    cfg = make_config(
        args.server,
        args.runner,
        load_key(args.key_file),
        store=args.store,
        poll_timeout=args.poll_timeout,
        once=args.once,
        once_wait=args.once_wait,
        max_message=parse_size(args.max_message, "--max-message"),
        backend=args.backend,
        insecure_registries=tuple(args.insecure_registry),
        drain_timeout=args.drain_timeout,
        tune=args.tune,
        tune_cpus=_tune_cpus(args.tune_cpus),
    )
    return run_agent(cfg)


def _tune_cpus(text: Any) -> Any:
    if text is None:
        return None
    from benchrun.host.settings import parse_cpus

    return tuple(sorted(parse_cpus(text, "--tune-cpus")))
