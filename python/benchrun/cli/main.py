"""benchrun CLI: a parser factory and one cmd_<verb> per subcommand (pyperf/hyperfine shape).

Exit codes (docs/cli.md):
  0     success (`benchrun run`: the workload exited 0)
  2     usage error: bad command line or option value (nothing was pulled or run)
  125   benchrun failed (registry, image, store, sandbox setup, ...): one-line message on stderr
  130   interrupted (Ctrl-C)
`benchrun run` otherwise exits with the workload's own exit code, except that these take
precedence, in this order: 125 benchrun error > 124 timed out > 126 OOM-killed > 128+N killed by
signal N. With --iterations, the last iteration's code; a benchrun error stops the iterations.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import sys
from typing import Any, Callable, Optional, Sequence

import benchrun
from benchrun import image as img
from benchrun.cli.progress import pull_progress
from benchrun.errors import BenchrunError, ConfigError
from benchrun.cli.run_options import add_run_options, restore_positional, run_options, with_flag
from benchrun.options import PULL_POLICIES, parse_env_file
from benchrun.runner import SCHEMA, Result, execute, load_image, make_spec

EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_ERROR = 125
EXIT_OOM = 126
EXIT_SIGNAL_BASE = 128
EXIT_INTERRUPTED = 130


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="DIR",
        help="image store (default: $BENCHRUN_CACHE or "
        "$XDG_CACHE_HOME/benchrun or ~/.cache/benchrun)",
    )


def _add_registry(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pull (default: host)"
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP to this registry (loopback registries always may)",
    )
    p.add_argument("--username", "-U", help="registry user name (password from --password-stdin)")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the registry password from stdin"
    )
    p.add_argument("--registry-token", metavar="TOKEN", help="bearer token to send to the registry")
    p.add_argument("--docker-config", metavar="FILE", help="docker config.json with credentials")
    p.add_argument(
        "--ca-file",
        metavar="FILE",
        help="CA bundle file for the registry's TLS (instead of the default bundle file)",
    )


class _Ignored:
    """Takes any call or attribute and ignores it: the parser of a command that is not run."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


class _OneCommand:
    """Subparsers that build the parser of ``command`` only: each parser costs ~0.3 ms (mostly
    argparse's gettext lookups), and `benchrun run` needs one of twenty."""

    def __init__(self, sub: Any, command: str) -> None:
        self._sub = sub
        self.command = command
        self.found = False

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name != self.command:
            return _Ignored()
        self.found = True
        return self._sub.add_parser(name, **kwargs)


# The subcommands whose parsers and cmd_* functions live in other modules: each module's
# add_parsers(sub) is imported and called only to run one of its commands, or for the full parser
# (--help). tests/py/unit/test_cli_parser.py checks this table against what the modules register.
_JOB_COMMANDS = "serve agent submit jobs job cancel project token runner"
SUBCOMMAND_MODULES = {
    "benchrun.cli.jobs": tuple(_JOB_COMMANDS.split()),
    "benchrun.cli.campaign": ("campaign",),
    "benchrun.cli.report": ("report",),
    "benchrun.cli.compare": ("compare",),
    "benchrun.cli.host": ("host",),
    "benchrun.cli.history": ("history",),
}


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in argv (the first word after the top-level flags), or None when the
    top-level parser itself has to answer (--help, --version, no command)."""
    for arg in argv:
        if arg in ("-h", "--help", "--version", "--"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The CLI's parser; with ``command``, only that subcommand's parser is built (when it exists:
    otherwise all of them, so that the error lists the commands)."""
    parser = argparse.ArgumentParser(
        prog="benchrun",
        description="Run benchmark OCI images in isolation and get trustworthy results.",
    )
    parser.add_argument("--version", action="version", version=f"benchrun {benchrun.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    sub: Any = subparsers if command is None else _OneCommand(subparsers, command)

    p = sub.add_parser("pull", help="pull an image into the local store, verify and unpack it")
    p.add_argument("ref", help="image: REF, docker://REF, oci:PATH[:TAG] or docker-archive:PATH")
    _add_store(p)
    _add_registry(p)
    p.add_argument("--no-unpack", action="store_true", help="download and verify only")
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="parallel layer downloads")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the image as JSON")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("inspect", help="show an image's digest, platform, config and layers")
    p.add_argument("ref", help="reference or manifest digest (pulled if not in the store)")
    _add_store(p)
    _add_registry(p)
    p.add_argument("--no-pull", action="store_true", help="fail instead of pulling a missing image")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("images", help="list images in the local store")
    _add_store(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--digests", action="store_true", help="show full digests")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("rmi", help="remove image references (space is freed by prune)")
    p.add_argument("refs", nargs="+", help="references or manifest digests")
    _add_store(p)
    p.add_argument("--prune", action="store_true", help="prune right away")
    p.set_defaults(func=cmd_rmi)

    p = sub.add_parser("prune", help="remove unreferenced blobs and unpacked trees")
    _add_store(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_prune)
    _add_run_parser(sub)
    for module, commands in SUBCOMMAND_MODULES.items():
        if command is None or command in commands:
            importlib.import_module(module).add_parsers(sub)
    if isinstance(sub, _OneCommand) and not sub.found:
        return build_parser()
    return parser


# --- `run`: its flags come from the option table (benchrun.options) -----------------------------


def _add_run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run an image in the sandbox or a microVM and report its result",
        usage="benchrun run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
        "       benchrun run [OPTIONS] --image IMAGE [COMMAND [ARG...]]",
        description="Run IMAGE (pulled first if missing) with Docker's entrypoint/cmd/env/workdir/"
        "user semantics and print the workload's stdout/stderr, or with --json one "
        "result document. Exits with the workload's exit code; 124 timed out, "
        "125 benchrun error, 126 OOM-killed, 128+N killed by signal N.",
    )
    # -v here too (benchrun run -v IMG); SUPPRESS keeps the top-level `benchrun -v run` value.
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print a one-line summary to stderr after each run; tracebacks on errors",
    )
    p.add_argument(
        "--image", metavar="REF", help="the image (then every positional is the command)"
    )
    p.add_argument(
        "--pull",
        choices=PULL_POLICIES,
        default="missing",
        help="pull the image: missing (default: when the store has not pulled it from this "
        "repository), always (check with the registry first; cheap when cached), never",
    )
    add_run_options(p)
    p.add_argument(
        "--secret",
        action="append",
        default=None,
        metavar="NAME[=HOSTFILE]",
        help="give the run the file /run/secrets/NAME (mode 0400, its user's; a tmpfs) with "
        "HOSTFILE's content, or with $BENCHRUN_SECRET_NAME's for NAME alone (repeatable); the "
        "value is redacted (***) from the output and never stored (docs/security.md)",
    )
    p.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read K=V lines from FILE (# comments, blank lines skipped); -e wins",
    )
    p.add_argument(
        "--iterations",
        metavar="N",
        type=int,
        default=1,
        help="run N times (the image is resolved and loaded once)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one result document on stdout instead of the workload's output",
    )
    _add_store(p)
    _add_registry(p)
    p.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="IMAGE [COMMAND [ARG...]]",
        help="the image, then the command replacing its Cmd",
    )
    p.set_defaults(func=cmd_run, run_parser=p)


def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    return dict(
        platform=args.platform,
        insecure_registries=args.insecure_registry,
        username=args.username,
        password=password,
        registry_token=args.registry_token,
        docker_config=args.docker_config,
        ca_file=args.ca_file,
    )


def cmd_pull(args: argparse.Namespace) -> int:
    if args.parallel < 1:
        raise benchrun.ConfigError(f"--parallel {args.parallel}: must be at least 1")
    with pull_progress(not args.quiet and not args.json) as progress:
        image = img.pull(
            args.ref,
            store=args.store,
            unpack=not args.no_unpack,
            max_parallel=args.parallel,
            progress=progress,
            **_registry_kwargs(args),
        )
    if args.json:
        doc = image.to_json()
        doc["timings"] = image.timings
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        t = image.timings.get("total", 0.0)
        print(
            f"{image.reference}: {image.digest} ({image.platform}, {len(image.layers)} layers, "
            f"{_human(image.size)}, {t:.2f}s)"
        )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        image = img.inspect(args.ref, store=args.store)
    except benchrun.ImageNotFound:
        if args.no_pull:
            raise
        image = img.pull(args.ref, store=args.store, **_registry_kwargs(args))
    if args.json:
        print(json.dumps(image.to_json(), indent=2))
        return 0
    c = image.config
    rows = [
        ("Reference", image.reference),
        ("Digest", image.digest),
        ("Config", image.config_digest),
        ("Platform", image.platform),
        ("Source", image.source),
        ("Created", c.created or "-"),
        ("Entrypoint", json.dumps(list(c.entrypoint)) if c.entrypoint else "-"),
        ("Cmd", json.dumps(list(c.cmd)) if c.cmd else "-"),
        ("WorkingDir", c.working_dir or "/"),
        ("User", c.user or "root (default)"),
        ("Rootfs", str(image.rootfs) if image.rootfs else "(not unpacked)"),
    ]
    for k, v in rows:
        print(f"{k + ':':<12} {v}")
    print("Env:")
    for e in c.env:
        print(f"  {e}")
    print(f"Layers ({len(image.layers)}, {_human(image.size)} compressed):")
    for layer in image.layers:
        print(f"  {layer.digest}  {_human(layer.size):>9}  {layer.media_type}")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    listing = img.images(store=args.store)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "references": list(s.references),
                        "digest": s.digest,
                        "platform": s.platform,
                        "size": s.size,
                        "layers": s.layers,
                        "rootfs": str(s.rootfs) if s.rootfs else None,
                        "pulled_at": s.pulled_at,
                    }
                    for s in listing
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'REFERENCE':<50} {'DIGEST':<19} {'PLATFORM':<14} {'SIZE':>9} {'PULLED'}")
    for s in listing:
        digest = s.digest if args.digests else s.digest.split(":", 1)[1][:12]
        when = dt.datetime.fromtimestamp(s.pulled_at).strftime("%Y-%m-%d %H:%M")
        for ref in s.references or ("<none>",):
            print(f"{ref:<50} {digest:<19} {s.platform:<14} {_human(s.size):>9} {when}")
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    status = 0
    for ref in args.refs:
        try:
            img.rmi(ref, store=args.store)
            print(f"Untagged: {ref}")
        except benchrun.ImageNotFound as e:
            print(f"benchrun: error: {e}", file=sys.stderr)
            status = EXIT_ERROR
    if args.prune:
        _print_prune(img.prune(store=args.store))
    return status


def _print_prune(stats: dict[str, int]) -> None:
    print(
        f"Removed {stats['blobs_removed']} blobs, {stats['rootfs_removed']} unpacked trees, "
        f"{stats['tmp_removed']} stale temp entries, {stats.get('vm_images_removed', 0)} VM root "
        f"images; freed {_human(stats['bytes_freed'])} (not counting VM images)"
    )


def cmd_prune(args: argparse.Namespace) -> int:
    stats = img.prune(store=args.store)
    if args.json:
        print(json.dumps(stats))
    else:
        _print_prune(stats)
    return 0


def _split_image_command(args: argparse.Namespace) -> tuple[str, Optional[list[str]]]:
    """(image, command or None) from --image and the positionals; a usage error if no image."""
    restore_positional(args)  # `--instructions IMAGE`: the IMAGE is a positional
    rest = list(args.args)
    if rest[:1] == ["--"]:  # `benchrun run -- IMAGE CMD`: the usual end-of-options marker
        rest.pop(0)
    if args.image is not None:
        image = args.image
    elif rest:
        image = rest.pop(0)
    else:
        args.run_parser.error("an IMAGE is required (positional or --image REF)")
    if not image:
        args.run_parser.error("IMAGE must not be empty")
    return image, (rest or None)


def exit_code_for(result: Result) -> int:
    """benchrun run's exit status for one result (precedence in the module docstring)."""
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.oom_killed:
        return EXIT_OOM
    if result.signal:
        return EXIT_SIGNAL_BASE + result.signal
    return result.exit_code & 0xFF


def _binary_size(n: int) -> str:
    """64 MiB -> "64MiB": caps are given in docker's binary units, so they are shown in them."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:g}{unit}"
        value /= 1024
    return f"{value:g}GiB"


def _notes(r: Result, max_output: int) -> list[str]:
    notes = []
    if r.timed_out:
        notes.append(f"timed out after {r.wall_time:.2f}s")
    if r.oom_killed:
        notes.append("OOM-killed (memory limit reached)")
    if r.stdout_truncated:
        notes.append(f"stdout truncated at {_binary_size(max_output)}")
    if r.stderr_truncated:
        notes.append(f"stderr truncated at {_binary_size(max_output)}")
    return notes


def _summary(r: Result, notes: list[str], label: str) -> str:
    status = f"killed by signal {r.signal}" if r.signal else f"exit {r.exit_code}"
    setup = sum(v for k, v in r.phases.items() if k != "run")
    if r.vm is not None:
        notes = notes + [f"vm {r.vm['accel']} boot {r.vm['boot_time']:.2f}s"]
    parts = notes + [
        status,
        f"wall {r.wall_time:.3f}s",
        f"cpu {r.cpu_user:.3f}s user {r.cpu_system:.3f}s sys",
        f"peak {_human(r.peak_memory)}",
        f"setup {setup:.3f}s",
    ]
    if "instructions" in r.metrics:  # --instructions (docs/instructions.md)
        parts.append(f"instructions {r.metrics['instructions'].value:,.0f}")
    if r.missing_outputs:
        parts.append("missing outputs: " + ", ".join(sorted(r.missing_outputs)))
    return f"benchrun: {label}{'; '.join(parts)}"


def _write(stream: Any, data: bytes) -> None:
    try:
        stream.buffer.write(data)
        stream.flush()
    except BrokenPipeError:
        # The reader went away (benchrun run img yes | head): stop writing, exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def quiet_counter_notice(notice: str, counters_given: bool) -> bool:
    """Whether `benchrun run` leaves a notice off stderr: the default counter set's hardware
    counters absent for want of a PMU (every run on a VM without one would say it otherwise;
    the Result and --json keep it)."""
    return (
        not counters_given and notice.startswith("counters absent:") and "no hardware PMU" in notice
    )


def cmd_run(args: argparse.Namespace) -> int:
    image, command = _split_image_command(args)
    verbose = bool(getattr(args, "verbose", False))
    options = run_options(args)
    try:
        if args.iterations < 1:
            raise ConfigError(f"--iterations {args.iterations}: must be at least 1")
        env_files = [e for path in args.env_file for e in parse_env_file(path)]
        if env_files:
            options["env"] = env_files + list(options.get("env", []))
        spec = make_spec(
            image,
            command,
            store=args.store,
            pull=args.pull,
            secrets=args.secret,
            **options,
            **_registry_kwargs(args),
        )
    except ConfigError as e:  # a bad option value is a usage error: nothing was pulled or run
        args.run_parser.error(with_flag(str(e)))
    # Pull once, with progress bars that are gone before the workload runs; the image is loaded
    # once and every iteration runs that same image.
    with pull_progress(not args.json) as progress:
        if progress is not None:
            spec = dataclasses.replace(spec, pull_kwargs={**spec.pull_kwargs, "progress": progress})
        loaded, pull_s = load_image(spec)
    # Each iteration's Result is let go once it is printed: with --json its document is
    # streamed as it comes (--iterations: one array entry each), so the runner holds at most one
    # iteration's output (issue 11, finding 6).
    out = _JsonIterations(args.iterations) if args.json else None
    last: Optional[Result] = None
    try:
        for i in range(args.iterations):
            # The pull above belongs to the first iteration's phases.
            last = None
            r = execute(spec, image=loaded, pull_s=pull_s if i == 0 else 0.0)
            if out is not None:
                out.add(r)
            else:
                _write(sys.stdout, r.stdout)
                _write(sys.stderr, r.stderr)
                if i == 0:
                    for notice in r.notices:
                        # Default counters a PMU-less host cannot count: in the Result (--json),
                        # on stderr only when asked for with --counters; docs/counters.md.
                        if quiet_counter_notice(notice, "counters" in options):
                            continue
                        print(f"benchrun: notice: {notice}", file=sys.stderr, flush=True)
            notes = _notes(r, spec.max_output_bytes)
            if verbose or notes:
                label = f"[{i + 1}/{args.iterations}] " if args.iterations > 1 else ""
                print(_summary(r, notes, label), file=sys.stderr, flush=True)
            last = r
            del r
    except BaseException as e:
        if out is not None:  # the iterations that finished are still worth having
            out.close("interrupted" if isinstance(e, KeyboardInterrupt) else str(e))
        raise
    if out is not None:
        out.close()
    assert last is not None
    return exit_code_for(last)


class _JsonIterations:
    """`run --json`: one result document, or with --iterations N the iterations' documents in
    {"schema", "iterations": [...], "error"?} as each finishes (nothing when none finished)."""

    def __init__(self, iterations: int):
        self.many = iterations > 1
        self.count = 0
        self.closed = False

    def add(self, r: Result) -> None:
        fp = sys.stdout.buffer
        try:
            if not self.many:
                r.write_json(fp)
            else:
                head = f'{{\n  "schema": {SCHEMA},\n  "iterations": [\n    '
                fp.write((head if self.count == 0 else ",\n    ").encode())
                r.write_json(fp, prefix="    ")
            fp.flush()
        except BrokenPipeError:
            _write(sys.stdout, b"")  # the reader went away: the rest goes to /dev/null
        self.count += 1

    def close(self, error: Optional[str] = None) -> None:
        if self.closed or self.count == 0:
            return
        self.closed = True
        tail = "\n"
        if self.many:
            tail = "\n  ]" + (f',\n  "error": {json.dumps(error)}' if error else "") + "\n}\n"
        _write(sys.stdout, tail.encode())


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("benchrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BenchrunError as e:
        if args.verbose:
            raise
        print(f"benchrun: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
