"""The CPU partition: the CPUs benchmark runs own (benchrun._core, host/cpu_partition.hpp).

The partition is the runs' parent cgroup itself ("benchrun", or $BENCHRUN_CGROUP_PARENT), so every
run's cgroup lives under it: v2 an ``isolated`` (else ``root``) cpuset partition, v1 a cpuset with
``cpu_exclusive``. Runs asking for CPUs (``vcpus``/``--vcpus N``, ``cpuset_cpus``) get free ones of
the partition, locked for them alone; the runner and QEMU's own threads run on the housekeeping
CPUs (the online CPUs outside it). Without a partition, runs get CPUs from all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from benchrun import _core
from benchrun.errors import ConfigError
from benchrun.host.settings import format_cpus

DEFAULT_ROOT = "/sys/fs/cgroup"
ONLINE = "/sys/devices/system/cpu/online"


@dataclass(frozen=True)
class Status:
    """The partition as the kernel reports it."""

    exists: bool  # benchmark CPUs are set (runs are confined to them)
    version: str  # "v1" or "v2"
    path: str  # the cpuset cgroup directory
    cpus: tuple[int, ...]  # the benchmark CPUs; () without a partition
    housekeeping: tuple[int, ...]  # online CPUs outside the partition
    mode: str  # v2: cpuset.cpus.partition ("isolated", "root", "member", "... invalid (why)");
    #            v1: "exclusive" or "shared"
    exclusive: bool  # no other cgroup may use the CPUs
    note: str = ""  # what the kernel refused

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["cpus"] = format_cpus(self.cpus)
        d["housekeeping"] = format_cpus(self.housekeeping)
        return d


def _status(d: dict) -> Status:
    return Status(
        exists=bool(d["exists"]),
        version=str(d["version"]),
        path=str(d["path"]),
        cpus=tuple(d["cpus"]),
        housekeeping=tuple(d["housekeeping"]),
        mode=str(d["mode"]),
        exclusive=bool(d["exclusive"]),
        note=str(d["note"]),
    )


def parse_cpus(cpus: Union[str, Iterable[int]]) -> tuple[int, ...]:
    """'1-3,5' or an iterable of CPU numbers -> a sorted tuple (ConfigError otherwise)."""
    if isinstance(cpus, str):
        return tuple(_core.parse_cpu_list(cpus))
    out = set()
    for c in cpus:
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"cpus {c!r}: expected a CPU number >= 0")
        out.add(c)
    return tuple(sorted(out))


def _name(name: str | None) -> str:
    if name:
        return name
    from benchrun.runner import cgroup_parent

    return cgroup_parent()


def create(
    cpus: Union[str, Iterable[int]],
    *,
    require_exclusive: bool = True,
    isolated: bool = True,
    name: str | None = None,
    root: str = DEFAULT_ROOT,
    version: str = "",
    online: str = ONLINE,
) -> Status:
    """Makes the runs' parent cgroup a partition of ``cpus`` (at least one online CPU must stay
    out, for housekeeping). ``require_exclusive``: fail (SandboxError, stage "cpu partition",
    naming the sibling cgroups in the way) rather than keep CPUs other cgroups may share; without
    it the partition keeps what the kernel granted and ``note`` says what it refused.
    ``isolated`` (v2): try an ``isolated`` partition first (no load balancing: quietest for
    single-threaded benchmarks; a multi-threaded run's threads stay where they were placed);
    False: a load-balanced ``root`` partition only."""
    cpu_list = list(parse_cpus(cpus))
    d = _core.partition_create(
        cpus=cpu_list,
        require_exclusive=require_exclusive,
        isolated=isolated,
        root=root,
        name=_name(name),
        version=version,
        online=online,
    )
    return _status(d)


def remove(
    *, name: str | None = None, root: str = DEFAULT_ROOT, version: str = "", online: str = ONLINE
) -> None:
    """Undoes create(): the runs' parent back to every CPU, removed when no run is in it."""
    _core.partition_remove(root=root, name=_name(name), version=version, online=online)


def status(
    *, name: str | None = None, root: str = DEFAULT_ROOT, version: str = "", online: str = ONLINE
) -> Status:
    """The partition as the kernel reports it (``exists`` False: runs may use every CPU)."""
    return _status(
        _core.partition_status(root=root, name=_name(name), version=version, online=online)
    )


def holders(cpus: Iterable[int]) -> dict[int, str]:
    """Which run holds each of cpus ("run-12-ab (pid 12)"; "" when free)."""
    from benchrun.runner import cpu_lock_dir

    return {c: _core.cpu_holder(c, lock_dir=cpu_lock_dir()) for c in cpus}


__all__ = ["Status", "create", "remove", "status", "holders", "parse_cpus", "format_cpus"]
