"""`benchrun host tune` and `benchrun host reset`: apply the recommendations of the settings
catalogue that can be applied, and restore exactly what was there before.

Crash safety: tune takes the journal lock, resets a journal left behind (a crashed or earlier
tune: its originals are the host's untouched values), reads every setting it will change and
writes all their original values to the journal (atomically, fsync'd) before the first change.
So when the process dies between any two writes, the journal lists every value that may have
changed; reset writes back each one that differs from its original, in reverse order, and
removes the journal once all are restored (a failed restore keeps the journal). Both are
idempotent: a reset killed half-way is finished by the next reset.

Fault injection (tests): $BENCHRUN_TUNE_KILL_AFTER=N (or ``kill_after=N``) SIGKILLs the process
after its N-th write to the host, in tune and in reset alike.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from benchrun.errors import ConfigError, SysError

from . import journal as _journal
from .attestation import forget as _forget_state
from .settings import Root, Setting, as_root, catalogue, selected

KILL_ENV = "BENCHRUN_TUNE_KILL_AFTER"


def _partition() -> Any:
    from benchrun.host import partition  # the native core: loaded only when a partition is made

    return partition


@dataclass
class TuneReport:
    """What tune() or reset() did."""

    journal: str
    cpus: tuple[int, ...] = ()
    housekeeping: tuple[int, ...] = ()
    changed: list[dict[str, str]] = field(default_factory=list)  # name, target, path, from, to
    failed: list[dict[str, str]] = field(default_factory=list)  # name, target, path, error
    not_settable: list[Setting] = field(default_factory=list)  # differ, but tune cannot
    stale_reset: Optional["TuneReport"] = None  # the earlier journal tune reset first
    partition: Optional[dict[str, Any]] = None  # the CPU partition made (partition.Status dict)

    @property
    def ok(self) -> bool:
        """No write failed except IRQ affinity ones (the kernel keeps some IRQs where they
        are: those are listed, not fatal)."""
        return all(f["name"] == "irq_affinity" for f in self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "journal": self.journal,
            "cpus": list(self.cpus),
            "housekeeping": list(self.housekeeping),
            "changed": self.changed,
            "failed": self.failed,
            "partition": self.partition,
            "not_settable": [s.to_json() for s in self.not_settable],
            "stale_reset": self.stale_reset.to_json() if self.stale_reset else None,
            "ok": self.ok,
        }


class _Writer:
    """Writes to the host, counting; SIGKILLs the process after ``kill_after`` writes."""

    def __init__(self, root: Root, kill_after: Optional[int]) -> None:
        self.root = root
        if kill_after is None and os.environ.get(KILL_ENV):
            try:
                kill_after = int(os.environ[KILL_ENV])
            except ValueError:
                raise ConfigError(f"${KILL_ENV}: expected a number of writes") from None
        self.kill_after = kill_after
        self.count = 0

    def write(self, path: str, value: str) -> None:
        self.root.write(path, value)
        self.count += 1
        if self.kill_after is not None and self.count >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def _error(e: OSError) -> str:
    return e.strerror or str(e)


def _journal_path(journal: "str | os.PathLike[str] | None") -> Path:
    return Path(journal) if journal is not None else _journal.default_journal()


def _check_root(root: Root) -> None:
    if root.path == "/" and os.geteuid() != 0:
        raise ConfigError("changing host settings needs root (run benchrun host as root)")


def _lock(path: Path, locked: bool) -> "contextlib.AbstractContextManager[Any]":
    """The journal lock, or nothing when the caller holds it already."""
    if locked:
        return contextlib.nullcontext()
    return _journal.Lock(path)


def _value_now(root: Root, s: Setting) -> str:
    """The value to write for ``s``: the minimum frequency follows the maximum as it is now
    (turning turbo off lowers intel_pstate's maximum)."""
    if s.name == "min_freq":
        hi = root.read(s.path.replace("scaling_min_freq", "scaling_max_freq"))
        if hi:
            return hi
    assert s.recommended is not None
    return s.recommended


def reset(
    root: "Root | str | os.PathLike[str]" = "/",
    journal: "str | os.PathLike[str] | None" = None,
    *,
    kill_after: Optional[int] = None,
    _locked: bool = False,
) -> Optional[TuneReport]:
    """Restores every value of the journal that differs from its original (reverse order) and
    removes the journal; None when there is no journal. A restore that fails keeps its entry in
    the journal and raises SysError after trying the others."""
    r = as_root(root)
    path = _journal_path(journal)
    with _lock(path, _locked):
        doc = _journal.load(path)
        if doc is None:
            return None
        if os.path.abspath(str(doc.get("root", "/"))) != r.path:
            raise ConfigError(
                f"tune journal '{path}' is for root '{doc.get('root')}', not '{r.path}'"
            )
        _check_root(r)
        writer = _Writer(r, kill_after)
        report = TuneReport(
            str(path), tuple(doc.get("cpus") or ()), tuple(doc.get("housekeeping") or ())
        )
        left: list[dict[str, Any]] = []
        for entry in reversed(doc["entries"]):
            rel, original = str(entry["path"]).lstrip("/"), str(entry["original"])
            current = r.read(rel)
            if entry.get("selector"):
                current = selected(current)
            if current is None and not r.exists(rel):
                # Gone (an IRQ freed, a CPU unplugged): nothing is left to restore.
                continue
            if current == original:
                continue
            try:
                writer.write(rel, original)
            except OSError as e:
                item = {
                    "name": entry.get("name", ""),
                    "target": entry.get("target", ""),
                    "path": "/" + rel,
                    "error": _error(e),
                }
                report.failed.append(item)
                left.append(entry)
                continue
            report.changed.append(
                {
                    "name": entry.get("name", ""),
                    "target": entry.get("target", ""),
                    "path": "/" + rel,
                    "from": current or "",
                    "to": original,
                }
            )
        if doc.get("partition"):
            # Made last by tune, undone first would be tidier, but removing it needs no setting:
            # idempotent, and a run still inside keeps the cgroup until it ends.
            try:
                _partition().remove()
            except Exception as e:  # noqa: BLE001 - a benchrun error: keep the journal entry
                report.failed.append(
                    {"name": "cpu_partition", "target": "", "path": "", "error": str(e)}
                )
                left_partition = True
            else:
                left_partition = False
        else:
            left_partition = False
        if left or left_partition:
            _journal.write_atomic(
                path,
                {**doc, "entries": list(reversed(left)), "partition": left_partition},
            )
            raise SysError(
                f"host reset: {len(left)} value(s) could not be restored ("
                + "; ".join(f"{f['path']}: {f['error']}" for f in report.failed[:3])
                + f"); they stay in '{path}'",
                op="reset",
                path=str(path),
            )
        _journal.remove(path)
        _forget_state()
        return report


def tune(
    root: "Root | str | os.PathLike[str]" = "/",
    cpus: Optional[Iterable[int]] = None,
    journal: "str | os.PathLike[str] | None" = None,
    *,
    keep_smt: bool = False,
    partition: Optional[bool] = None,
    owner: str = "cli",
    kill_after: Optional[int] = None,
    _locked: bool = False,
) -> TuneReport:
    """Applies every settable recommendation for the benchmark ``cpus`` (default: all online
    CPUs but the lowest-numbered, which keeps the IRQs). A journal already there is reset first.
    Returns what changed, what failed (IRQs the kernel keeps in place are listed, not fatal) and
    what differs but cannot be set here. ``partition`` (default: on the real host, root "/"):
    also make the benchmark CPUs the runs' CPU partition (benchrun.host.partition, shared when
    the kernel refuses exclusivity: the report's ``partition`` says so); reset removes it."""
    r = as_root(root)
    if partition is None:
        partition = r.path == "/"
    path = _journal_path(journal)
    with _lock(path, _locked):
        _check_root(r)
        stale = reset(r, path, kill_after=kill_after, _locked=True)
        plan, settings = catalogue(r, cpus, keep_smt=keep_smt)
        todo = [s for s in settings if s.differs]
        doc: dict[str, Any] = {
            "version": _journal.VERSION,
            "pid": os.getpid(),
            "owner": owner,
            "host": socket.gethostname(),
            "created": time.time(),
            "root": r.path,
            "cpus": list(plan.cpus),
            "housekeeping": list(plan.housekeeping),
            "keep_smt": keep_smt,
            "complete": False,
            "entries": [
                {
                    "name": s.name,
                    "target": s.target,
                    "path": "/" + s.path,
                    "original": s.current,
                    "selector": s.name.startswith("thp_"),
                }
                for s in todo
            ],
            "failed": [],
        }
        _journal.write_atomic(path, doc)  # every original value, before the first change
        report = TuneReport(str(path), plan.cpus, plan.housekeeping, stale_reset=stale)
        report.not_settable = [s for s in settings if not s.settable and not s.matches]
        writer = _Writer(r, kill_after)
        for s in todo:
            value = _value_now(r, s)
            try:
                writer.write(s.path, value)
            except OSError as e:
                report.failed.append(
                    {"name": s.name, "target": s.target, "path": "/" + s.path, "error": _error(e)}
                )
                continue
            report.changed.append(
                {
                    "name": s.name,
                    "target": s.target,
                    "path": "/" + s.path,
                    "from": s.current or "",
                    "to": value,
                }
            )
        if partition:
            doc["partition"] = True  # journaled before it exists: a crash leaves it undoable
            _journal.write_atomic(path, doc)
            try:
                made = _partition().create(plan.cpus, require_exclusive=False)
                report.partition = made.to_dict()
            except Exception as e:  # noqa: BLE001 - a benchrun error (no cgroupfs, a run inside)
                report.failed.append(
                    {"name": "cpu_partition", "target": "", "path": "", "error": str(e)}
                )
        doc["complete"] = True
        doc["failed"] = report.failed
        _journal.write_atomic(path, doc)
        _forget_state()
        return report


@contextlib.contextmanager
def tuned(
    root: "Root | str | os.PathLike[str]" = "/",
    cpus: Optional[Iterable[int]] = None,
    journal: "str | os.PathLike[str] | None" = None,
    *,
    keep_smt: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Iterator[TuneReport]:
    """Tunes the host for as long as the block runs (holding the journal lock), then resets it,
    also on an exception. A journal left by a crashed holder is reset first."""
    path = _journal_path(journal)
    with _journal.Lock(path):
        try:
            report = tune(root, cpus, path, keep_smt=keep_smt, owner="agent", _locked=True)
        except BaseException:  # half-tuned: undo what the journal holds before giving up
            if path.exists():
                reset(root, path, _locked=True)
            raise
        if report.stale_reset is not None:
            log(f"reset a stale tune journal ({len(report.stale_reset.changed)} value(s))")
        log(
            f"host tuned for CPUs {','.join(map(str, report.cpus))}: "
            f"{len(report.changed)} change(s), {len(report.failed)} refused"
        )
        try:
            yield report
        finally:
            done = reset(root, path, _locked=True)
            log(f"host reset: {len(done.changed) if done else 0} value(s) restored")


def benchmark_cpus(journal: "str | os.PathLike[str] | None" = None) -> Optional[tuple[int, ...]]:
    """The benchmark CPUs of the tune journal in place, None when the host is not tuned."""
    doc = _journal.load(_journal_path(journal))
    return tuple(doc.get("cpus") or ()) if doc is not None else None


def reset_stale_agent_journal(
    root: "Root | str | os.PathLike[str]" = "/",
    journal: "str | os.PathLike[str] | None" = None,
) -> Optional[TuneReport]:
    """Resets a journal an agent (owner "agent") left when it died; None when there is none, or
    it is another's, or a live process holds it."""
    path = _journal_path(journal)
    try:
        doc = _journal.load(path)
    except ConfigError:
        return None
    if doc is None or doc.get("owner") != "agent":
        return None
    try:
        with _journal.Lock(path):
            return reset(root, path, _locked=True)
    except ConfigError:
        return None


__all__ = [
    "KILL_ENV",
    "TuneReport",
    "benchmark_cpus",
    "reset",
    "reset_stale_agent_journal",
    "tune",
    "tuned",
]
