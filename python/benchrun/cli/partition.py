"""`benchrun host partition create|remove|status`: the CPU partition benchmark runs own
(benchrun.host.partition). benchrun.cli.host lists add_partition_parser in HOST_PARSERS.

Exit status of `status`: 0 when an exclusive partition exists, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_partition_parser(host_sub: Any) -> None:
    """Adds `partition` (create, remove, status) to the subparsers of `benchrun host`."""
    p = host_sub.add_parser(
        "partition",
        help="the CPU partition for benchmark runs: exclusive CPUs, the rest for housekeeping",
    )
    verbs = p.add_subparsers(dest="partition_verb", metavar="VERB", required=True)
    c = verbs.add_parser("create", help="make the runs' cgroup an exclusive cpuset of CPUS")
    c.add_argument("cpus", metavar="CPUS", help="the benchmark CPUs, e.g. 1-3 (keep one out)")
    c.add_argument(
        "--allow-shared",
        action="store_true",
        help="keep the partition even when the kernel refuses exclusivity (v1: a sibling cpuset "
        "overlaps; v2: the partition is invalid); the output says why",
    )
    c.add_argument(
        "--balanced",
        action="store_true",
        help="v2: a load-balanced 'root' partition instead of 'isolated' (for multi-threaded "
        "runs: in an isolated partition threads stay on the CPU they were placed on)",
    )
    verbs.add_parser("remove", help="undo create: runs may use every CPU again")
    verbs.add_parser("status", help="the partition, its CPUs and the housekeeping CPUs")
    for v in ("create", "remove", "status"):
        vp = verbs.choices[v]
        vp.add_argument("--json", action="store_true", help="print the status as JSON")
        vp.add_argument("--cgroup-root", default="/sys/fs/cgroup", help="where cgroupfs is mounted")
        vp.set_defaults(func=cmd_partition)


def _print(st: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st.to_dict(), indent=2, sort_keys=True))
        return
    from benchrun.host.partition import format_cpus

    if not st.exists:
        print(f"no CPU partition ({st.version}, {st.path}): runs may use every CPU")
    else:
        print(f"partition {st.path} ({st.version}): CPUs {format_cpus(st.cpus)}, mode {st.mode}")
    print(f"housekeeping CPUs: {format_cpus(st.housekeeping) or 'none'}")
    if st.note:
        print(f"note: {st.note}")


def cmd_partition(args: argparse.Namespace) -> int:
    from benchrun.host import partition

    root = args.cgroup_root
    if args.partition_verb == "create":
        st = partition.create(
            args.cpus,
            require_exclusive=not args.allow_shared,
            isolated=not args.balanced,
            root=root,
        )
    elif args.partition_verb == "remove":
        partition.remove(root=root)
        st = partition.status(root=root)
    else:
        st = partition.status(root=root)
    _print(st, args.json)
    if args.partition_verb == "status":
        return 0 if st.exists and st.exclusive else 1
    return 0
