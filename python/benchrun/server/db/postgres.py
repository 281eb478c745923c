"""The shared job store: PostgreSQL through asyncpg, for several server processes on one database.

Design: queries go through a connection pool; each state change is ONE statement, a data-modifying
CTE whose final SELECT also calls pg_notify(), so the change and its notification commit together
(NOTIFY is delivered at commit, never for a rolled-back change). A claim locks the best pending
row with FOR UPDATE SKIP LOCKED: concurrent claimers in any process skip a row another claimer
holds instead of waiting for it or taking it twice (a row already claimed by a committed
transaction fails the status re-check and the scan moves on). One extra connection per process
LISTENs on benchrun_work (payload: the project id) and benchrun_events (payload: an Event as JSON):
a submit in any process wakes every process's idle runners at once, and every process's events()
subscribers see every change, this process's own included (they arrive through the same path). If
the listening connection drops, it reconnects with backoff and wakes all waiters (a missed submit
is then found by polling); events sent while it was down are lost.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any, Optional, Sequence

import asyncpg

from benchrun.errors import ConfigError
from benchrun.jobs.protocol import CLAIMED, PENDING, RUNNING
from benchrun.server.db import keys, rows, schema
from benchrun.server.db.base import Database, Event, Job, Principal, Project, Runner
from benchrun.server.db.fanout import EventHub, Subscription, WorkSignal

_JOB_COLS = ", ".join(rows.JOB_COLUMNS)
_RETURNING_JOB = "RETURNING " + ", ".join(f"jobs.{c}" for c in rows.JOB_COLUMNS)
# application_name of the LISTEN connection, to find it in pg_stat_activity.
LISTENER_NAME = "benchrun-listen"
# While the LISTEN connection is down, waiters poll at this interval instead of sleeping.
_POLL_WITHOUT_LISTENER = 1.0


def _event_notify(kind: str, at: str) -> str:
    """A select-list item that NOTIFYs the Event for the row `u` (a CTE of changed jobs)."""
    return (
        f"pg_notify('{rows.EVENTS_CHANNEL}', json_build_object('kind', '{kind}', 'job', u.id, "
        f"'project', u.project, 'status', u.status, 'at', {at}::float8)::text)"
    )


_WORK_NOTIFY = f"pg_notify('{rows.WORK_CHANNEL}', u.project)"


def _key_current(runner: str, key_hash: str) -> str:
    """The runner's key is still key_hash and it is not archived (both are $n marks): claims,
    results and heartbeats of a channel carry it, so a rotation or deletion committed by any
    process stops them in the same statement."""
    return (
        f"EXISTS (SELECT 1 FROM runners WHERE runners.id = {runner} "
        f"AND runners.key_hash = {key_hash} AND runners.archived IS NULL)"
    )


class _Params:
    """Collects positional arguments for a query built piece by piece; call it to get "$n"."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _dollar_marks(sql: str) -> str:
    """`?` -> `$1`, `$2`, ... (the history store writes one SQL text for both dialects and never
    puts a `?` inside a literal)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" if i < len(parts) else part for i, part in enumerate(parts, 1))


def redact(dsn: str) -> str:
    u = urllib.parse.urlsplit(dsn)
    if u.password is None:
        return dsn
    netloc = u.netloc.replace(f":{u.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(u._replace(netloc=netloc))


class PostgresDatabase(Database):
    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self.dsn = dsn
        self._pool_size = pool_size
        self._pool: Optional[asyncpg.Pool] = None
        self._listener: Optional[asyncpg.Connection] = None
        self._reconnect_task: Optional[asyncio.Task] = None
        self._lock = asyncio.Lock()
        self._work = WorkSignal()
        self._hub = EventHub()
        self._closed = False

    # --- plumbing ---
    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise ConfigError(f"database '{redact(self.dsn)}' is closed")
        async with self._lock:
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self._pool_size)
                    try:
                        await self._listen()
                    except BaseException:
                        await pool.close()
                        raise
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    raise ConfigError(f"connect to '{redact(self.dsn)}': {e}") from None
                self._pool = pool
        assert self._pool is not None
        return self._pool

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": LISTENER_NAME})
        try:
            await conn.add_listener(rows.WORK_CHANNEL, self._on_work)
            await conn.add_listener(rows.EVENTS_CHANNEL, self._on_event)
            await conn.add_listener(rows.RUNNERS_CHANNEL, self._on_runner)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_listener_lost)
        self._listener = conn

    def _on_work(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._work.wake()

    def _on_event(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = rows.event_from_json(payload)
        if event is not None:
            self._hub.publish(event)

    def _on_runner(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._revoked(payload)

    def _on_listener_lost(self, _conn: Any) -> None:
        self._listener = None
        if self._closed:
            return
        self._work.wake()  # a submit may have been missed: let idle runners claim once
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        delay = 0.1
        while not self._closed and self._listener is None:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._work.wake()

    async def _job(self, job_id: str) -> Optional[Job]:
        r = await (await self._ready()).fetchrow(
            f"SELECT {_JOB_COLS} FROM jobs WHERE id = $1", job_id
        )
        return None if r is None else rows.job_from_row(r)

    # --- lifecycle ---
    async def migrate(self) -> int:
        pool = await self._ready()
        async with pool.acquire() as c:
            async with c.transaction():
                # Serializes migrating processes until commit; the second sees the first's rows.
                await c.execute("SELECT pg_advisory_xact_lock($1)", schema.PG_MIGRATION_LOCK)
                await c.execute(schema.SCHEMA_VERSION_TABLE)
                current = await c.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                for m in schema.pending(current):
                    for sql in m.statements("postgresql"):
                        await c.execute(sql)
                    await c.execute(
                        "INSERT INTO schema_version (version, name, applied) "
                        "VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        time.time(),
                    )
                    current = m.version
        return current

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await asyncio.wait_for(listener.close(), 5)
            except (asyncio.TimeoutError, OSError, asyncpg.InterfaceError):
                listener.terminate()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except asyncio.TimeoutError:
                pool.terminate()
        self._hub.close()
        self._work.wake()

    # --- projects and user tokens ---
    async def create_project(self, name: str) -> Project:
        project = Project(id=rows.new_id(), name=rows.check_project_name(name), created=time.time())
        try:
            await (await self._ready()).execute(
                "INSERT INTO projects (id, name, created) VALUES ($1, $2, $3)",
                project.id,
                project.name,
                project.created,
            )
        except asyncpg.UniqueViolationError:
            raise ConfigError(f"create project '{name}': a project with that name exists") from None
        return project

    async def list_projects(self) -> list[Project]:
        rs = await (await self._ready()).fetch("SELECT * FROM projects ORDER BY created, id")
        return [rows.project_from_row(r) for r in rs]

    async def get_project(self, project: str) -> Optional[Project]:
        r = await (await self._ready()).fetchrow(
            "SELECT * FROM projects WHERE id = $1 OR name = $1", project
        )
        return None if r is None else rows.project_from_row(r)

    async def create_token(self, name: str, *, admin: bool, projects: tuple[str, ...] = ()) -> str:
        secret = keys.new_user_token()
        await (await self._ready()).execute(
            "INSERT INTO tokens (id, name, token_hash, admin, projects, created) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            rows.new_id(),
            name,
            keys.secret_hash(secret),
            bool(admin),
            rows.dump(list(rows.check_projects(projects))),
            time.time(),
        )
        return secret

    async def auth_token(self, secret: str) -> Optional[Principal]:
        if not keys.is_user_token(secret):
            return None
        r = await (await self._ready()).fetchrow(
            "SELECT * FROM tokens WHERE token_hash = $1", keys.secret_hash(secret)
        )
        return None if r is None else rows.principal_from_row(r)

    async def count_tokens(self) -> int:
        return int(await (await self._ready()).fetchval("SELECT COUNT(*) FROM tokens"))

    # --- runners ---
    async def create_runner(self, name: str, projects: tuple[str, ...]) -> tuple[Runner, str]:
        key = keys.new_runner_key()
        runner = Runner(
            id=rows.new_id(),
            name=rows.check_runner_name(name),
            projects=rows.check_projects(projects),
            created=time.time(),
        )
        try:
            await (await self._ready()).execute(
                "INSERT INTO runners (id, name, key_hash, projects, created) "
                "VALUES ($1, $2, $3, $4, $5)",
                runner.id,
                runner.name,
                keys.secret_hash(key),
                rows.dump(list(runner.projects)),
                runner.created,
            )
        except asyncpg.UniqueViolationError:
            raise ConfigError(f"create runner '{name}': a runner with that name exists") from None
        return runner, key

    async def rotate_runner_key(self, runner: str) -> Optional[str]:
        key = keys.new_runner_key()
        # The NOTIFY commits with the new key: every process (this one too, through its LISTEN
        # connection) closes the runner's channels that still hold the old one.
        rs = await (await self._ready()).fetch(
            "WITH u AS (UPDATE runners SET key_hash = $1 WHERE id = $2 OR name = $2 RETURNING id)"
            f" SELECT u.id, pg_notify('{rows.RUNNERS_CHANNEL}', u.id) FROM u",
            keys.secret_hash(key),
            runner,
        )
        return key if len(rs) == 1 else None

    async def runner_key_current(self, runner_id: str, key_hash: str) -> bool:
        return bool(
            await (await self._ready()).fetchval(
                f"SELECT {_key_current('$1', '$2')}", runner_id, key_hash
            )
        )

    async def auth_runner(self, runner: str, key: str) -> Optional[Runner]:
        if not keys.is_runner_key(key):
            return None
        r = await (await self._ready()).fetchrow(
            "SELECT * FROM runners WHERE key_hash = $1 AND (id = $2 OR name = $2) "
            "AND archived IS NULL",
            keys.secret_hash(key),
            runner,
        )
        return None if r is None else rows.runner_from_row(r)

    async def list_runners(self) -> list[Runner]:
        rs = await (await self._ready()).fetch("SELECT * FROM runners ORDER BY created, id")
        return [rows.runner_from_row(r) for r in rs]

    async def get_runner(self, runner: str) -> Optional[Runner]:
        r = await (await self._ready()).fetchrow(
            "SELECT * FROM runners WHERE id = $1 OR name = $1", runner
        )
        return None if r is None else rows.runner_from_row(r)

    async def update_runner(
        self,
        runner: str,
        *,
        projects: Optional[tuple[str, ...]] = None,
        archived: Optional[bool] = None,
        at: float,
    ) -> Optional[Runner]:
        p = _Params()
        sets: list[str] = []
        if projects is not None:
            sets.append(f"projects = {p(rows.dump(list(rows.check_projects(projects))))}")
        if archived is not None:
            sets.append(
                f"archived = COALESCE(archived, {p(at)}::float8)" if archived else "archived = NULL"
            )
        if not sets:
            return await self.get_runner(runner)
        name = p(runner)
        notify = f", pg_notify('{rows.RUNNERS_CHANNEL}', u.id)" if archived else ""
        r = await (await self._ready()).fetchrow(
            f"WITH u AS (UPDATE runners SET {', '.join(sets)} WHERE id = {name} OR name = {name}"
            f" RETURNING *) SELECT u.*{notify} FROM u",
            *p.values,
        )
        return None if r is None else rows.runner_from_row(r)

    async def touch_runner(self, runner_id: str, at: float) -> None:
        await (await self._ready()).execute(
            "UPDATE runners SET last_seen = $1 WHERE id = $2", at, runner_id
        )

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
        marks = ", ".join(f"${i}" for i in range(1, len(rows.JOB_COLUMNS) + 1))
        try:
            r = await (await self._ready()).fetchrow(
                f"WITH u AS (INSERT INTO jobs ({_JOB_COLS}) VALUES ({marks}) {_RETURNING_JOB}) "
                f"SELECT u.*, {_WORK_NOTIFY}, {_event_notify('submitted', '$8')} FROM u",
                rows.new_id(),
                project,
                PENDING,
                int(priority),
                rows.dump(spec),
                rows.dump(config),
                int(timeout),
                at,
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
            )
        except asyncpg.ForeignKeyViolationError:
            raise ConfigError(f"submit job: no project '{project}'") from None
        return rows.job_from_row(r)

    async def claim_job(
        self, runner: Runner, at: float, *, key_hash: Optional[str] = None
    ) -> Optional[Job]:
        if not runner.projects:
            return None
        args: list[Any] = [list(runner.projects), runner.id, at, rows.new_id()]
        key_cond = ""
        if key_hash is not None:
            args.append(key_hash)
            key_cond = f" AND {_key_current('$2', '$5')}"
        r = await (await self._ready()).fetchrow(
            f"WITH c AS (SELECT id FROM jobs WHERE status = {PENDING} AND project = ANY($1::text[])"
            f"  AND (pin_runner IS NULL OR pin_runner = $2)"
            f"  ORDER BY priority DESC, created, id LIMIT 1 FOR UPDATE SKIP LOCKED),"
            f" u AS (UPDATE jobs SET status = {CLAIMED}, runner = $2, claimed = $3, claim = $4"
            f"  FROM c WHERE jobs.id = c.id AND jobs.status = {PENDING}{key_cond} {_RETURNING_JOB})"
            f" SELECT u.*, {_event_notify('job', '$3')} FROM u",
            *args,
        )
        return None if r is None else rows.job_from_row(r)

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
        if not from_:
            return False, await self._job(job_id)
        p = _Params()
        at_mark = p(at)
        sets = [f"status = {p(to)}"]
        if to == RUNNING:
            sets.append(f"started = COALESCE(started, {at_mark}::float8)")
        if rows.is_terminal(to):
            sets.append(f"ended = {at_mark}::float8")
        for column, value in (
            ("results", results),
            ("timings", timings),
            ("host_state", host_state),
            ("iterations", iterations),
            ("testbed", testbed),
        ):
            if value is not None:
                sets.append(f"{column} = {p(rows.dump(value))}")
        for column, text in (("error", error), ("reason", reason)):
            if text is not None:
                sets.append(f"{column} = {p(text)}")
        where = f"id = {p(job_id)} AND status = ANY({p(list(from_))}::int[])"
        if runner is not None:
            runner_mark = p(runner)
            where += f" AND runner = {runner_mark}"
            if key_hash is not None:
                where += f" AND {_key_current(runner_mark, p(key_hash))}"
        elif key_hash is not None:
            raise ValueError("transition: key_hash needs runner")
        if claim is not None:
            where += f" AND claim = {p(claim)}"
        notify = _event_notify("job", at_mark) + (f", {_WORK_NOTIFY}" if to == PENDING else "")
        r = await (await self._ready()).fetchrow(
            f"WITH u AS (UPDATE jobs SET {', '.join(sets)} WHERE {where} {_RETURNING_JOB}) "
            f"SELECT u.*, {notify} FROM u",
            *p.values,
        )
        if r is not None:
            return True, rows.job_from_row(r)
        return False, await self._job(job_id)

    async def heartbeat(
        self,
        job_id: str,
        runner: str,
        at: float,
        *,
        claim: Optional[str] = None,
        key_hash: Optional[str] = None,
    ) -> Optional[Job]:
        p = _Params()
        at_mark, runner_mark = p(at), p(runner)
        where = f"id = {p(job_id)} AND runner = {runner_mark} AND status IN ({CLAIMED}, {RUNNING})"
        if claim is not None:
            where += f" AND claim = {p(claim)}"
        if key_hash is not None:
            where += f" AND {_key_current(runner_mark, p(key_hash))}"
        r = await (await self._ready()).fetchrow(
            f"WITH u AS (UPDATE jobs SET last_heartbeat = {at_mark} WHERE {where} {_RETURNING_JOB})"
            f" SELECT u.*, {_event_notify('heartbeat', at_mark)} FROM u",
            *p.values,
        )
        return rows.job_from_row(r) if r is not None else await self._job(job_id)

    async def get_job(self, job_id: str) -> Optional[Job]:
        return await self._job(job_id)

    async def list_jobs(
        self,
        *,
        projects: Optional[tuple[str, ...]],
        status: Optional[int] = None,
        runner: Optional[str] = None,
        limit: int = 100,
        before: Optional[float] = None,
    ) -> list[Job]:
        p = _Params()
        where: list[str] = []
        if projects is not None:
            if not projects:
                return []
            where.append(f"project = ANY({p(list(projects))}::text[])")
        if status is not None:
            where.append(f"status = {p(int(status))}")
        if runner is not None:
            where.append(f"runner = {p(runner)}")
        if before is not None:
            where.append(f"created < {p(float(before))}")
        sql = f"SELECT {_JOB_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created DESC, id DESC LIMIT {p(max(0, int(limit)))}"
        return [rows.job_from_row(r) for r in await (await self._ready()).fetch(sql, *p.values)]

    async def in_flight_jobs(self) -> list[Job]:
        rs = await (await self._ready()).fetch(
            f"SELECT {_JOB_COLS} FROM jobs WHERE status IN ({CLAIMED}, {RUNNING}) "
            f"ORDER BY created, id"
        )
        return [rows.job_from_row(r) for r in rs]

    # --- plain SQL (history) ---
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rs = await (await self._ready()).fetch(_dollar_marks(sql), *args)
        return [dict(r) for r in rs]

    async def write(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[dict[str, Any]]]:
        pool = await self._ready()
        out = []
        async with pool.acquire() as c:
            async with c.transaction():
                for sql, args in statements:
                    out.append([dict(r) for r in await c.fetch(_dollar_marks(sql), *args)])
        return out

    async def notify(self, event: Event) -> None:
        await (await self._ready()).execute(
            "SELECT pg_notify($1, $2)", rows.EVENTS_CHANNEL, rows.event_to_json(event)
        )

    # --- wakeups and events ---
    async def wait_for_work(self, timeout: float) -> bool:
        if self._closed:
            return False
        await self._ready()
        if self._listener is None:
            timeout = min(timeout, _POLL_WITHOUT_LISTENER)
        return await self._work.wait(timeout)

    def events(self) -> Subscription:
        return self._hub.subscribe()
