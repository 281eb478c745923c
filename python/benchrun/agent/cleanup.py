"""Startup sweep of what a SIGKILLed agent left behind: run cgroups (and the workload processes in
them) and run directories of processes that no longer exist.

Every run sweeps the same leftovers before it starts (run::cleanup_leftovers in the core), but an
agent must not leave a killed job's workload burning CPU until its next job arrives, so it also
sweeps once at startup, with the very same code.
"""

from __future__ import annotations

from typing import Optional

from benchrun import _core
from benchrun.store import resolve_store


def sweep_leftovers(store: Optional[str] = None, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Removes stale run cgroups and run directories under the store; returns how many."""
    from benchrun.runner import cgroup_parent

    return int(
        _core.cleanup_leftovers(
            store=resolve_store(store), cgroup_root=cgroup_root, cgroup_parent=cgroup_parent()
        )
    )
