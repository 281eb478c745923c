"""benchrun CLI: a parser factory and one cmd_<verb> per subcommand (pyperf/hyperfine shape).

Exit codes: 0 success; 2 usage error; 125 benchrun failed (registry, image, store, ...);
130 interrupted. (`benchrun run` will return the workload's own exit code.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Callable, Optional, Sequence

import benchrun
from benchrun import image as img
from benchrun.cli.progress import pull_progress
from benchrun.errors import BenchrunError

EXIT_USAGE = 2
EXIT_ERROR = 125
EXIT_INTERRUPTED = 130


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="DIR", help="image store (default: $BENCHRUN_CACHE or "
                   "$XDG_CACHE_HOME/benchrun or ~/.cache/benchrun)")


def _add_registry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pull (default: host)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="allow plain HTTP to this registry (loopback registries always may)")
    p.add_argument("--username", "-U", help="registry user name (password from --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    p.add_argument("--registry-token", metavar="TOKEN", help="bearer token to send to the registry")
    p.add_argument("--docker-config", metavar="FILE", help="docker config.json with credentials")
    p.add_argument("--ca-file", metavar="FILE", help="extra CA bundle for the registry's TLS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchrun", description="Run benchmark OCI images in isolation and get trustworthy results."
    )
    parser.add_argument("--version", action="version", version=f"benchrun {benchrun.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
    return parser


def _registry_kwargs(args: argparse.Namespace) -> dict:
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
        image = img.pull(args.ref, store=args.store, unpack=not args.no_unpack,
                         max_parallel=args.parallel, progress=progress, **_registry_kwargs(args))
    if args.json:
        doc = image.to_json()
        doc["timings"] = image.timings
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        t = image.timings.get("total", 0.0)
        print(f"{image.reference}: {image.digest} ({image.platform}, {len(image.layers)} layers, "
              f"{_human(image.size)}, {t:.2f}s)")
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
        print(json.dumps([
            {"references": list(s.references), "digest": s.digest, "platform": s.platform,
             "size": s.size, "layers": s.layers, "rootfs": str(s.rootfs) if s.rootfs else None,
             "pulled_at": s.pulled_at} for s in listing
        ], indent=2))
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


def _print_prune(stats: dict) -> None:
    print(f"Removed {stats['blobs_removed']} blobs, {stats['rootfs_removed']} unpacked trees, "
          f"{stats['tmp_removed']} stale temp entries; freed {_human(stats['bytes_freed'])}")


def cmd_prune(args: argparse.Namespace) -> int:
    stats = img.prune(store=args.store)
    if args.json:
        print(json.dumps(stats))
    else:
        _print_prune(stats)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
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
