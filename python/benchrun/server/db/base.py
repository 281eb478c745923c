"""The job server's storage interface. Two implementations with one schema (db/schema.py):
SQLite (db/sqlite.py, one file, the embedded default) and PostgreSQL (db/postgres.py, a fleet of
server processes sharing one database). Every state change is one conditional UPDATE (a status
filter), so concurrent servers and duplicate messages cannot corrupt a job; a claim hands a job to
exactly one runner.

All methods are async and safe to call concurrently from one event loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Optional, Sequence


@dataclass(frozen=True)
class Project:
    id: str  # UUID
    name: str
    created: float  # unix seconds


@dataclass(frozen=True)
class Principal:
    """Who a user API token speaks for: an admin (every project, runner administration) or the
    listed projects."""

    token_id: str
    name: str
    admin: bool
    projects: tuple[str, ...]

    def can_see(self, project_id: str) -> bool:
        return self.admin or project_id in self.projects


@dataclass(frozen=True)
class Runner:
    id: str  # UUID
    name: str  # also its slug: [a-z0-9-]+
    projects: tuple[str, ...]  # the projects whose jobs it may claim; () = none
    created: float
    last_seen: Optional[float] = None
    archived: bool = False


@dataclass(frozen=True)
class Job:
    id: str  # UUID
    project: str
    status: int  # benchrun.jobs.protocol.PENDING ... CANCELED
    priority: int
    spec: dict[str, Any]  # JobSpec.to_json()
    config: dict[str, Any]  # JobConfig.to_json(): image pinned by digest
    timeout: int  # seconds of run time before the hard deadline (+ grace)
    created: float
    runner: Optional[str] = None  # claimed by
    claimed: Optional[float] = None
    started: Optional[float] = None  # `running` received
    ended: Optional[float] = None
    last_heartbeat: Optional[float] = None
    results: Optional[list[dict[str, Any]]] = None  # JsonIterationOutput list
    error: Optional[str] = None
    reason: Optional[str] = None  # why it ended when not by the runner: heartbeat_timeout, ...
    timings: dict[str, float] = field(default_factory=dict)  # agent-reported: pull, prepare, run
    claim: Optional[str] = None  # UUID of the current claim (set by claim_job)
    # The runner's attestation of its host (benchrun.host.attestation), from completed/failed.
    host_state: Optional[dict[str, Any]] = None
    # benchrun extensions from completed/failed: each iteration's metrics and times, the testbed.
    iterations: Optional[list[dict[str, Any]]] = None
    testbed: Optional[dict[str, Any]] = None
    pin_runner: Optional[str] = None  # only this runner may claim it (confirmation jobs)


@dataclass(frozen=True)
class Event:
    """A change worth telling listeners about (SSE, idle runners)."""

    kind: str  # "job" (status change), "heartbeat", "submitted", "alert"
    job: str  # the job id (an alert's id for kind "alert")
    project: str
    status: int  # a job status (an alert state for kind "alert")
    at: float


class Database(abc.ABC):
    """Opened with benchrun.server.db.open_database(url)."""

    # --- lifecycle ---
    @abc.abstractmethod
    async def migrate(self) -> int:
        """Connects (first call) and applies pending schema migrations (versioned, each once, in a
        transaction); returns the schema version. Call it once at startup, before anything else."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Closes connections; open events() iterators end, wait_for_work() callers wake."""

    # --- projects and user tokens ---
    @abc.abstractmethod
    async def create_project(self, name: str) -> Project:
        ...

    @abc.abstractmethod
    async def list_projects(self) -> list[Project]:
        ...

    @abc.abstractmethod
    async def get_project(self, project: str) -> Optional[Project]:
        """project = id or name."""

    @abc.abstractmethod
    async def create_token(self, name: str, *, admin: bool, projects: tuple[str, ...] = ()) -> str:
        """Returns the secret ("benchrun_user_" + 32 random alphanumerics); only its SHA-256 is
        stored."""

    @abc.abstractmethod
    async def auth_token(self, secret: str) -> Optional[Principal]:
        ...

    @abc.abstractmethod
    async def count_tokens(self) -> int:
        """How many API tokens exist: `benchrun serve` creates the admin token when there are none
        (first start)."""

    # --- runners ---
    @abc.abstractmethod
    async def create_runner(self, name: str, projects: tuple[str, ...]) -> tuple[Runner, str]:
        """Returns the runner and its key ("bencher_runner_" + 30 alphanumerics, as upstream);
        only the key's SHA-256 hex is stored."""

    @abc.abstractmethod
    async def rotate_runner_key(self, runner: str) -> Optional[str]:
        """A new key for runner (id or name); the old one stops working at once: claims, results
        and heartbeats check the key (runner_key_current) in the same statement, and every server
        process sharing the database hears of it (revocation listeners). None if there is no such
        runner."""

    @abc.abstractmethod
    async def runner_key_current(self, runner_id: str, key_hash: str) -> bool:
        """True while key_hash is runner_id's key and the runner is not archived (deleted)."""

    def add_revocation_listener(self, fn: Callable[[str], None]) -> None:
        """fn(runner_id) runs on the event loop after a runner's key was rotated or the runner
        archived, in this process or (PostgreSQL NOTIFY) any other sharing the database."""
        self.__dict__.setdefault("_revocation_listeners", []).append(fn)

    def _revoked(self, runner_id: str) -> None:
        for fn in list(self.__dict__.get("_revocation_listeners", ())):
            fn(runner_id)

    @abc.abstractmethod
    async def auth_runner(self, runner: str, key: str) -> Optional[Runner]:
        """runner = id or name; None unless the key's hash matches that runner and it is not
        archived (one query: hash AND runner)."""

    @abc.abstractmethod
    async def list_runners(self) -> list[Runner]:
        ...

    @abc.abstractmethod
    async def get_runner(self, runner: str) -> Optional[Runner]:
        """runner = id or name; archived runners too."""

    @abc.abstractmethod
    async def update_runner(
        self,
        runner: str,
        *,
        projects: Optional[tuple[str, ...]] = None,
        archived: Optional[bool] = None,
        at: float,
    ) -> Optional[Runner]:
        """Changes what is given (archived=True stamps `at` unless already archived, and revokes
        the runner's key like a rotation; False restores); returns the runner as it is now, None if
        there is no such runner."""

    @abc.abstractmethod
    async def touch_runner(self, runner_id: str, at: float) -> None:
        ...

    # --- jobs ---
    @abc.abstractmethod
    async def submit_job(
        self,
        project: str,
        spec: dict[str, Any],
        config: dict[str, Any],
        *,
        priority: int,
        timeout: int,
        at: float,
        pin_runner: Optional[str] = None,
    ) -> Job:
        """Inserts a pending job and wakes idle runners (notify); pin_runner = the only runner
        (id) that may claim it."""

    @abc.abstractmethod
    async def claim_job(
        self, runner: Runner, at: float, *, key_hash: Optional[str] = None
    ) -> Optional[Job]:
        """Atomically moves the best pending job of the runner's projects (priority DESC, created
        ASC, id ASC) to claimed by this runner, with a fresh `claim` id; None if there is none, or
        (key_hash given) if that is no longer the runner's current key. Concurrent claims (any number
        of processes) never hand one job to two runners (PostgreSQL: FOR UPDATE SKIP LOCKED;
        SQLite: BEGIN IMMEDIATE)."""

    @abc.abstractmethod
    async def transition(
        self,
        job_id: str,
        to: int,
        *,
        from_: tuple[int, ...],
        runner: Optional[str] = None,
        at: float,
        results: Optional[list[dict[str, Any]]] = None,
        error: Optional[str] = None,
        reason: Optional[str] = None,
        timings: Optional[dict[str, float]] = None,
        claim: Optional[str] = None,
        key_hash: Optional[str] = None,
        host_state: Optional[dict[str, Any]] = None,
        iterations: Optional[list[dict[str, Any]]] = None,
        testbed: Optional[dict[str, Any]] = None,
    ) -> tuple[bool, Optional[Job]]:
        """One conditional UPDATE: status in from_ (and runner, claim and the runner's current key
        match, when given) -> to, setting
        started (to RUNNING; kept if already set), ended (terminal), results/error/reason/timings/
        host_state/iterations/testbed when given (they replace). Returns (changed, the job as it is now; None if no such
        job). Emits an Event when changed; a move to PENDING also wakes idle runners."""

    @abc.abstractmethod
    async def heartbeat(
        self,
        job_id: str,
        runner: str,
        at: float,
        *,
        claim: Optional[str] = None,
        key_hash: Optional[str] = None,
    ) -> Optional[Job]:
        """Records liveness of an in-flight job of this runner (of this claim and while key_hash is
        the runner's key, when given); returns the job (None if unknown)."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> Optional[Job]:
        ...

    @abc.abstractmethod
    async def list_jobs(
        self,
        *,
        projects: Optional[tuple[str, ...]],
        status: Optional[int] = None,
        runner: Optional[str] = None,
        limit: int = 100,
        before: Optional[float] = None,
    ) -> list[Job]:
        """Newest first; projects None = all."""

    @abc.abstractmethod
    async def in_flight_jobs(self) -> list[Job]:
        """Claimed or running jobs (startup recovery, timeout sweeps)."""

    # --- wakeups and events ---
    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> bool:
        """Blocks until a job may be claimable (a submit anywhere: PostgreSQL LISTEN/NOTIFY across
        processes, an in-process signal for SQLite) or timeout; True if woken. A wakeup is not
        remembered for later callers: loop claim -> wait_for_work(short timeout, e.g. 1 s, as
        upstream's POLL_INTERVAL) so a submit landing between them costs at most one interval."""

    # --- plain SQL for the history store (benchrun.server.history.store) ---
    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one statement, as dicts; `?` marks parameters in both dialects."""

    @abc.abstractmethod
    async def write(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[dict[str, Any]]]:
        """Runs the statements in one transaction (all or none); each one's rows (RETURNING)."""

    @abc.abstractmethod
    async def notify(self, event: Event) -> None:
        """Publishes an event (e.g. kind "alert") to every events() subscriber: in process for
        SQLite, through NOTIFY to every server process for PostgreSQL."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Event]:
        """Status changes and heartbeats from now on, from every server process sharing the
        database (PostgreSQL NOTIFY) or this one (SQLite). The iterator is registered when this
        returns; it buffers up to 1000 events, then drops the oldest (its `dropped` attribute
        counts them); aclose() it when done. It ends when the database closes."""
