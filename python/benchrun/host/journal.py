"""The tune journal: every original value `benchrun host tune` is about to change, written
atomically (temporary file, fsync, rename, fsync of the directory) before the first change, so
that `benchrun host reset` can restore the host after any crash; and the lock that keeps two
benchrun processes from tuning or resetting one host at once.

State directory: $BENCHRUN_HOST_STATE, else /var/lib/benchrun/host as root, else
$XDG_STATE_HOME/benchrun/host (~/.local/state/benchrun/host). It also holds noise.json
(`benchrun host noise`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Optional

from benchrun.errors import ConfigError

JOURNAL_NAME = "tune-journal.json"
NOISE_NAME = "noise.json"
VERSION = 1


def state_dir() -> Path:
    """Where benchrun keeps the host's tune journal and noise figure."""
    env = os.environ.get("BENCHRUN_HOST_STATE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/benchrun/host")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return Path(base) / "benchrun" / "host"


def default_journal() -> Path:
    return state_dir() / JOURNAL_NAME


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Replaces ``path`` with ``doc`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(path.parent)


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def load(path: Path) -> Optional[dict[str, Any]]:
    """The journal at ``path``, None when there is none; ConfigError when it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"read tune journal '{path}': {e.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(
            f"tune journal '{path}': not JSON ({e}); restore the values it lists by hand, "
            "then delete it"
        ) from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ConfigError(
            f"tune journal '{path}': version {doc.get('version') if isinstance(doc, dict) else '?'}"
            f" (this benchrun reads {VERSION})"
        )
    if not isinstance(doc.get("entries"), list):
        raise ConfigError(f"tune journal '{path}': no entries list")
    return doc


class Lock:
    """An exclusive flock on ``<journal>.lock`` while a process tunes, resets, or (an agent with
    --tune) keeps the host tuned. The kernel drops it when the process dies, so a journal whose
    lock is free belongs to nobody: it is stale."""

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + ".lock")
        self.fd: Optional[int] = None

    def acquire(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                owner = ""
                try:
                    owner = f" (pid {self.path.read_text().strip()})"
                except OSError:
                    pass
                raise ConfigError(
                    f"tune journal '{self.path.with_suffix('')}' is in use by another benchrun "
                    f"process{owner}: an agent started with --tune resets it when it exits"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = [
    "JOURNAL_NAME",
    "NOISE_NAME",
    "Lock",
    "default_journal",
    "load",
    "remove",
    "state_dir",
    "write_atomic",
]
