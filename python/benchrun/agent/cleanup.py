"""Startup sweep of what a SIGKILLed agent left behind: run cgroups (and the workload processes in
them) and run directories named after a process that no longer exists.

The run pipeline sweeps the same leftovers at the start of every run (run::cleanup_leftovers), but
an agent must not leave a killed job's workload burning CPU until its next job arrives, so it
sweeps once at startup. Names follow the core: cgroups `<root>[/<controller>]/benchrun/run-<pid>-*`
and directories `<store>/runs/run-<pid>*`; <pid> alive means another runner owns them.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import signal
import time
from pathlib import Path

from benchrun.store import resolve_store

log = logging.getLogger("benchrun.agent")

_RUN_NAME = re.compile(r"^run-(\d+)(?:-|$)")
KILL_TIMEOUT = 10.0  # seconds to empty a cgroup


def _stale(name: str) -> bool:
    m = _RUN_NAME.match(name)
    if not m:
        return False
    pid = int(m.group(1))
    if pid <= 0 or pid > 2**31 - 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _pids(group: Path) -> set[int]:
    pids: set[int] = set()
    for d in [group, *[p for p in group.rglob("*") if p.is_dir()]]:
        for f in ("cgroup.procs", "tasks"):
            try:
                pids.update(int(x) for x in (d / f).read_text().split())
            except (OSError, ValueError):
                pass
    return pids


def _remove_group(group: Path) -> bool:
    """SIGKILLs everything in ``group`` until it is empty (bounded), then removes it bottom-up."""
    deadline = time.monotonic() + KILL_TIMEOUT
    while (pids := _pids(group)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    ok = True
    for d in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        ok &= _rmdir(d)
    return _rmdir(group) and ok


def _rmdir(d: Path) -> bool:
    for _ in range(50):
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                return False
            time.sleep(0.01)
    return False


def _mount_points() -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4]


def sweep_leftovers(store: str | None = None, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Removes stale run cgroups (killing their processes) and run dirs; returns how many."""
    removed = 0
    root = Path(cgroup_root)
    parents = [root / "benchrun"]
    if root.is_dir():
        parents += [c / "benchrun" for c in root.iterdir() if c.is_dir()]
    for parent in parents:
        try:
            names = [p for p in parent.iterdir() if p.is_dir() and _stale(p.name)]
        except OSError:
            continue
        for group in names:
            if _remove_group(group):
                removed += 1
                log.info("removed the leftover cgroup %s", group)
            else:
                log.warning("could not remove the leftover cgroup %s", group)
    runs = Path(resolve_store(store)) / "runs"
    try:
        dirs = [p for p in runs.iterdir() if _stale(p.name)]
    except OSError:
        dirs = []
    mounts = _mount_points()
    for d in dirs:
        prefix = str(d) + "/"
        if any(m == str(d) or m.startswith(prefix) for m in mounts):
            log.warning("leaving %s: something is still mounted in it", d)
            continue
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            removed += 1
            log.info("removed the leftover run directory %s", d)
    return removed
