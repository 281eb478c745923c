"""The embedded job store: one SQLite file (or :memory:) driven by stdlib sqlite3.

Design: one connection lives on one dedicated worker thread (a single-thread executor), so the
event loop never blocks on disk and the connection is never shared between threads. The file is
in WAL mode with a busy timeout, so readers do not block the writer and several processes (another
server, the tests' claimers) can open the same file. Every write runs in BEGIN IMMEDIATE, which
takes SQLite's single write lock up front: a claim's SELECT-then-UPDATE cannot interleave with
another writer in any process, so one job goes to one runner. wait_for_work() and events() are
in-process only (fanout.py): a second server on the same file does not see this one's submits until
its runners poll again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from benchrun.errors import ConfigError
from benchrun.jobs.protocol import CLAIMED, PENDING, RUNNING
from benchrun.server.db import keys, rows, schema
from benchrun.server.db.base import Database, Event, Job, Principal, Project, Runner
from benchrun.server.db.fanout import EventHub, Subscription, WorkSignal

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
_JOB_COLS = ", ".join(rows.JOB_COLUMNS)
# The runner's key is still key_hash and the runner is not archived: claims, results and
# heartbeats of a channel carry it, so a rotation or deletion stops them in the same statement.
_KEY_CURRENT = (
    "EXISTS (SELECT 1 FROM runners WHERE runners.id = ? AND runners.key_hash = ? "
    "AND runners.archived IS NULL)"
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _set_wal(conn: sqlite3.Connection) -> None:
    """journal_mode = WAL. Switching a fresh database's mode needs its exclusive lock, and SQLite
    answers "database is locked" at once (without the busy handler) while another connection
    (a server starting at the same time) switches it: retry within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteDatabase(Database):
    def __init__(self, path: str) -> None:
        self.path = path  # a file path or ":memory:"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchrun-sqlite")
        self._conn: Optional[sqlite3.Connection] = None
        self._work = WorkSignal()
        self._hub = EventHub()
        self._closed = False

    # --- plumbing: everything touching the connection runs on the worker thread ---
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ConfigError(f"database '{self.path}' is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                )
            except sqlite3.Error as e:
                raise ConfigError(f"open database '{self.path}': {e}") from None
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                _set_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL is safe
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn = conn
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # some errors (SQLITE_FULL, ...) already rolled back
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _publish(self, events: list[Event], wake: bool = False) -> None:
        for e in events:
            self._hub.publish(e)
        if wake:
            self._work.wake()

    # --- lifecycle ---
    async def migrate(self) -> int:
        return await self._run(self._migrate)

    def _migrate(self) -> int:
        with self._write() as c:
            c.execute(schema.SCHEMA_VERSION_TABLE)
            current = c.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[
                0
            ]
            for m in schema.pending(current):
                for sql in m.statements("sqlite"):
                    c.execute(sql)
                c.execute(
                    "INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
                    (m.version, m.name, time.time()),
                )
                current = m.version
            return current

    async def close(self) -> None:
        if self._closed:
            return

        def close_conn() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_conn)
        self._closed = True
        self._executor.shutdown(wait=True)
        self._hub.close()
        self._work.wake()

    # --- projects and user tokens ---
    async def create_project(self, name: str) -> Project:
        project = Project(id=rows.new_id(), name=rows.check_project_name(name), created=time.time())

        def insert() -> None:
            try:
                with self._write() as c:
                    c.execute(
                        "INSERT INTO projects (id, name, created) VALUES (?, ?, ?)",
                        (project.id, project.name, project.created),
                    )
            except sqlite3.IntegrityError:
                raise ConfigError(
                    f"create project '{name}': a project with that name exists"
                ) from None

        await self._run(insert)
        return project

    async def list_projects(self) -> list[Project]:
        def q() -> list[Project]:
            cur = self._db().execute("SELECT * FROM projects ORDER BY created, id")
            return [rows.project_from_row(r) for r in cur.fetchall()]

        return await self._run(q)

    async def get_project(self, project: str) -> Optional[Project]:
        def q() -> Optional[Project]:
            r = (
                self._db()
                .execute("SELECT * FROM projects WHERE id = ? OR name = ?", (project, project))
                .fetchone()
            )
            return None if r is None else rows.project_from_row(r)

        return await self._run(q)

    async def create_token(self, name: str, *, admin: bool, projects: tuple[str, ...] = ()) -> str:
        secret = keys.new_user_token()
        projects = rows.check_projects(projects)

        def insert() -> None:
            with self._write() as c:
                c.execute(
                    "INSERT INTO tokens (id, name, token_hash, admin, projects, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        rows.new_id(),
                        name,
                        keys.secret_hash(secret),
                        bool(admin),
                        rows.dump(list(projects)),
                        time.time(),
                    ),
                )

        await self._run(insert)
        return secret

    async def auth_token(self, secret: str) -> Optional[Principal]:
        if not keys.is_user_token(secret):
            return None

        def q() -> Optional[Principal]:
            r = (
                self._db()
                .execute("SELECT * FROM tokens WHERE token_hash = ?", (keys.secret_hash(secret),))
                .fetchone()
            )
            return None if r is None else rows.principal_from_row(r)

        return await self._run(q)

    async def count_tokens(self) -> int:
        def q() -> int:
            return int(self._db().execute("SELECT COUNT(*) FROM tokens").fetchone()[0])

        return await self._run(q)

    # --- runners ---
    async def create_runner(self, name: str, projects: tuple[str, ...]) -> tuple[Runner, str]:
        key = keys.new_runner_key()
        runner = Runner(
            id=rows.new_id(),
            name=rows.check_runner_name(name),
            projects=rows.check_projects(projects),
            created=time.time(),
        )

        def insert() -> None:
            try:
                with self._write() as c:
                    c.execute(
                        "INSERT INTO runners (id, name, key_hash, projects, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (
                            runner.id,
                            runner.name,
                            keys.secret_hash(key),
                            rows.dump(list(runner.projects)),
                            runner.created,
                        ),
                    )
            except sqlite3.IntegrityError:
                raise ConfigError(
                    f"create runner '{name}': a runner with that name exists"
                ) from None

        await self._run(insert)
        return runner, key

    async def rotate_runner_key(self, runner: str) -> Optional[str]:
        key = keys.new_runner_key()

        def update() -> Optional[str]:
            with self._write() as c:
                r = c.execute(
                    "UPDATE runners SET key_hash = ? WHERE id = ? OR name = ? RETURNING id",
                    (keys.secret_hash(key), runner, runner),
                ).fetchall()
                return r[0][0] if len(r) == 1 else None

        runner_id = await self._run(update)
        if runner_id is None:
            return None
        self._revoked(runner_id)
        return key

    async def runner_key_current(self, runner_id: str, key_hash: str) -> bool:
        def q() -> bool:
            return (
                self._db().execute(f"SELECT {_KEY_CURRENT}", (runner_id, key_hash)).fetchone()[0]
                == 1
            )

        return await self._run(q)

    async def auth_runner(self, runner: str, key: str) -> Optional[Runner]:
        if not keys.is_runner_key(key):
            return None

        def q() -> Optional[Runner]:
            r = (
                self._db()
                .execute(
                    "SELECT * FROM runners WHERE key_hash = ? AND (id = ? OR name = ?) "
                    "AND archived IS NULL",
                    (keys.secret_hash(key), runner, runner),
                )
                .fetchone()
            )
            return None if r is None else rows.runner_from_row(r)

        return await self._run(q)

    async def list_runners(self) -> list[Runner]:
        def q() -> list[Runner]:
            cur = self._db().execute("SELECT * FROM runners ORDER BY created, id")
            return [rows.runner_from_row(r) for r in cur.fetchall()]

        return await self._run(q)

    async def get_runner(self, runner: str) -> Optional[Runner]:
        def q() -> Optional[Runner]:
            r = (
                self._db()
                .execute("SELECT * FROM runners WHERE id = ? OR name = ?", (runner, runner))
                .fetchone()
            )
            return None if r is None else rows.runner_from_row(r)

        return await self._run(q)

    async def update_runner(
        self,
        runner: str,
        *,
        projects: Optional[tuple[str, ...]] = None,
        archived: Optional[bool] = None,
        at: float,
    ) -> Optional[Runner]:
        sets: list[str] = []
        args: list[Any] = []
        if projects is not None:
            sets.append("projects = ?")
            args.append(rows.dump(list(rows.check_projects(projects))))
        if archived is not None:
            sets.append("archived = COALESCE(archived, ?)" if archived else "archived = NULL")
            if archived:
                args.append(at)

        def update() -> Optional[Runner]:
            with self._write() as c:
                if sets:
                    c.execute(
                        f"UPDATE runners SET {', '.join(sets)} WHERE id = ? OR name = ?",
                        (*args, runner, runner),
                    )
                r = c.execute(
                    "SELECT * FROM runners WHERE id = ? OR name = ?", (runner, runner)
                ).fetchone()
                return None if r is None else rows.runner_from_row(r)

        found = await self._run(update)
        if found is not None and archived:
            self._revoked(found.id)
        return found

    async def touch_runner(self, runner_id: str, at: float) -> None:
        def update() -> None:
            with self._write() as c:
                c.execute("UPDATE runners SET last_seen = ? WHERE id = ?", (at, runner_id))

        await self._run(update)

    # --- jobs ---
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
        job = Job(
            id=rows.new_id(),
            project=project,
            status=PENDING,
            priority=int(priority),
            spec=spec,
            config=config,
            timeout=int(timeout),
            created=at,
            pin_runner=pin_runner,
        )

        def insert() -> None:
            try:
                with self._write() as c:
                    c.execute(
                        f"INSERT INTO jobs ({_JOB_COLS}) VALUES ({_marks(len(rows.JOB_COLUMNS))})",
                        (
                            job.id,
                            job.project,
                            job.status,
                            job.priority,
                            rows.dump(spec),
                            rows.dump(config),
                            job.timeout,
                            job.created,
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            rows.dump({}),
                            None,
                            None,
                            None,
                            None,
                            pin_runner,
                        ),
                    )
            except sqlite3.IntegrityError:
                raise ConfigError(f"submit job: no project '{project}'") from None

        await self._run(insert)
        self._publish([rows.event_of("submitted", job, at)], wake=True)
        return job

    async def claim_job(
        self, runner: Runner, at: float, *, key_hash: Optional[str] = None
    ) -> Optional[Job]:
        projects = list(runner.projects)
        if not projects:
            return None
        key_cond, key_args = (
            (f" AND {_KEY_CURRENT}", (runner.id, key_hash)) if key_hash else ("", ())
        )

        def claim() -> Optional[Job]:
            with self._write() as c:
                r = c.execute(
                    f"UPDATE jobs SET status = ?, runner = ?, claimed = ?, claim = ? WHERE id = ("
                    f" SELECT id FROM jobs WHERE status = ?"
                    f" AND project IN ({_marks(len(projects))})"
                    f" AND (pin_runner IS NULL OR pin_runner = ?)"
                    f" ORDER BY priority DESC, created, id LIMIT 1){key_cond} RETURNING {_JOB_COLS}",
                    (
                        CLAIMED,
                        runner.id,
                        at,
                        rows.new_id(),
                        PENDING,
                        *projects,
                        runner.id,
                        *key_args,
                    ),
                ).fetchall()
                return rows.job_from_row(r[0]) if r else None

        job = await self._run(claim)
        if job is not None:
            self._publish([rows.event_of("job", job, at)])
        return job

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
        sets = ["status = ?"]
        args: list[Any] = [to]
        if to == RUNNING:
            sets.append("started = COALESCE(started, ?)")
            args.append(at)
        if rows.is_terminal(to):
            sets.append("ended = ?")
            args.append(at)
        for column, value in (
            ("results", results),
            ("timings", timings),
            ("host_state", host_state),
            ("iterations", iterations),
            ("testbed", testbed),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(rows.dump(value))
        for column, text in (("error", error), ("reason", reason)):
            if text is not None:
                sets.append(f"{column} = ?")
                args.append(text)
        # An empty from_ matches nothing: the caller gets the job back unchanged.
        where = f"id = ? AND status IN ({_marks(len(from_))})" if from_ else "id = ? AND 0"
        args += [job_id, *from_]
        if runner is not None:
            where += " AND runner = ?"
            args.append(runner)
        if claim is not None:
            where += " AND claim = ?"
            args.append(claim)
        if key_hash is not None:
            if runner is None:
                raise ValueError("transition: key_hash needs runner")
            where += f" AND {_KEY_CURRENT}"
            args += [runner, key_hash]

        def update() -> tuple[bool, Optional[Job]]:
            with self._write() as c:
                r = c.execute(
                    f"UPDATE jobs SET {', '.join(sets)} WHERE {where} " f"RETURNING {_JOB_COLS}",
                    args,
                ).fetchall()
                if r:
                    return True, rows.job_from_row(r[0])
                row = c.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return False, None if row is None else rows.job_from_row(row)

        changed, job = await self._run(update)
        if changed and job is not None:
            self._publish([rows.event_of("job", job, at)], wake=to == PENDING)
        return changed, job

    async def heartbeat(
        self,
        job_id: str,
        runner: str,
        at: float,
        *,
        claim: Optional[str] = None,
        key_hash: Optional[str] = None,
    ) -> Optional[Job]:
        where = "id = ? AND runner = ? AND status IN (?, ?)"
        args: list[Any] = [at, job_id, runner, *rows.IN_FLIGHT]
        if claim is not None:
            where += " AND claim = ?"
            args.append(claim)
        if key_hash is not None:
            where += f" AND {_KEY_CURRENT}"
            args += [runner, key_hash]

        def update() -> tuple[bool, Optional[Job]]:
            with self._write() as c:
                r = c.execute(
                    f"UPDATE jobs SET last_heartbeat = ? WHERE {where} RETURNING {_JOB_COLS}",
                    args,
                ).fetchall()
                if r:
                    return True, rows.job_from_row(r[0])
                row = c.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return False, None if row is None else rows.job_from_row(row)

        beat, job = await self._run(update)
        if beat and job is not None:
            self._publish([rows.event_of("heartbeat", job, at)])
        return job

    async def get_job(self, job_id: str) -> Optional[Job]:
        def q() -> Optional[Job]:
            r = (
                self._db()
                .execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,))
                .fetchone()
            )
            return None if r is None else rows.job_from_row(r)

        return await self._run(q)

    async def list_jobs(
        self,
        *,
        projects: Optional[tuple[str, ...]],
        status: Optional[int] = None,
        runner: Optional[str] = None,
        limit: int = 100,
        before: Optional[float] = None,
    ) -> list[Job]:
        where: list[str] = []
        args: list[Any] = []
        if projects is not None:
            if not projects:
                return []
            where.append(f"project IN ({_marks(len(projects))})")
            args += projects
        for cond, value in (
            ("status = ?", status),
            ("runner = ?", runner),
            ("created < ?", before),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = f"SELECT {_JOB_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(max(0, int(limit)))

        def q() -> list[Job]:
            return [rows.job_from_row(r) for r in self._db().execute(sql, args).fetchall()]

        return await self._run(q)

    async def in_flight_jobs(self) -> list[Job]:
        def q() -> list[Job]:
            cur = self._db().execute(
                f"SELECT {_JOB_COLS} FROM jobs WHERE status IN (?, ?) " f"ORDER BY created, id",
                rows.IN_FLIGHT,
            )
            return [rows.job_from_row(r) for r in cur.fetchall()]

        return await self._run(q)

    # --- plain SQL (history) ---
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def q() -> list[dict[str, Any]]:
            return [dict(r) for r in self._db().execute(sql, tuple(args)).fetchall()]

        return await self._run(q)

    async def write(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[dict[str, Any]]]:
        def w() -> list[list[dict[str, Any]]]:
            with self._write() as c:
                return [
                    [dict(r) for r in c.execute(sql, tuple(a)).fetchall()] for sql, a in statements
                ]

        return await self._run(w)

    async def notify(self, event: Event) -> None:
        self._publish([event])

    # --- wakeups and events ---
    async def wait_for_work(self, timeout: float) -> bool:
        if self._closed:
            return False
        return await self._work.wait(timeout)

    def events(self) -> Subscription:
        return self._hub.subscribe()
