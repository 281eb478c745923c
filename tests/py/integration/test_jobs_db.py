"""The job store (benchrun.server.db) on both backends: SQLite in tmp_path and PostgreSQL on the
session's throwaway cluster. Sync tests driving asyncio.run (no pytest-asyncio)."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import sqlite3
import time
from typing import Any, Awaitable, Callable

import pytest

from benchrun.errors import ConfigError
from benchrun.jobs.protocol import (CANCELED, CLAIMED, COMPLETED, FAILED, PENDING, PROCESSED,
                                    RUNNING)
from benchrun.server.db import Database, Runner, open_database, schema
from benchrun.server.db.fanout import EventHub
from benchrun.server.db.base import Event
from support.jobs_db_worker import claim_all

SPEC = {"uuid": "00000000-0000-4000-8000-000000000001", "cpu": 1, "memory": 1 << 28}
CONFIG = {"digest": "sha256:" + "0" * 64, "timeout": 60}
HOST_STATE = {"tuned": False, "differs": ["aslr"], "cpus": [1], "journal": True,
              "noise": {"score": 0.012, "age_s": 3600.0}}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/jobs.db"
    return request.getfixturevalue("pg_dsn")


def with_db(url: str, body: Callable[[Database], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        db = open_database(url)
        try:
            await db.migrate()
            return await body(db)
        finally:
            await db.close()

    return asyncio.run(main())


async def dump_tables(url: str, tables: tuple[str, ...]) -> str:
    """Every row of `tables` as text, read behind the store's back."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            return "\n".join(repr(r) for t in tables for r in conn.execute(f"SELECT * FROM {t}"))
        finally:
            conn.close()
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        lines = []
        for t in tables:
            lines += [repr(tuple(r)) for r in await conn.fetch(f"SELECT * FROM {t}")]
        return "\n".join(lines)
    finally:
        await conn.close()


async def submit(db: Database, project: str, *, priority: int = 100, at: float = 0.0, **kw: Any):
    return await db.submit_job(project, SPEC, CONFIG, priority=priority, timeout=60,
                               at=at or time.time(), **kw)


# --- open_database and migrations ---

@pytest.mark.parametrize("bad", ["", "mysql://u@h/db", "sqlite://relative.db", "sqlite:///",
                                 "sqlite:relative", "jobs.db", "postgresql://h:notaport/db"])
def test_open_database_rejects(bad):
    with pytest.raises(ConfigError):
        open_database(bad)


def test_open_database_memory():
    async def body(db: Database) -> None:
        p = await db.create_project("mem")
        assert [x.id for x in await db.list_projects()] == [p.id]

    with_db("sqlite://:memory:", body)


def test_migrations_versioned_and_idempotent(url):
    async def body(db: Database) -> None:
        assert await db.migrate() == schema.LATEST_VERSION  # the second run: a no-op
        text = await dump_tables(url, ("schema_version",))
        assert text.count("\n") + 1 == len(schema.MIGRATIONS)

    with_db(url, body)


def test_concurrent_migrations(url):
    """Servers starting together: each migration applied once (PG: advisory lock)."""
    async def main() -> None:
        dbs = [open_database(url) for _ in range(6)]
        try:
            versions = await asyncio.gather(*(db.migrate() for db in dbs))
            assert versions == [schema.LATEST_VERSION] * 6
            text = await dump_tables(url, ("schema_version",))
            assert sorted(int(line.strip("(").split(",")[0]) for line in text.splitlines()) == \
                [m.version for m in schema.MIGRATIONS]
        finally:
            for db in dbs:
                await db.close()

    asyncio.run(main())


def test_migration_3_upgrades_a_version_2_database(url, monkeypatch):
    """A store made before jobs.host_state (migrations 1-2, with a finished job in it) gains the
    column on the next start; the old job reads back with host_state None."""
    full = schema.MIGRATIONS

    async def main() -> None:
        monkeypatch.setattr(schema, "MIGRATIONS", full[:2])
        db = open_database(url)
        try:
            assert await db.migrate() == 2
            p = await db.create_project("old")
        finally:
            await db.close()
        # A job as a version-2 server wrote it, behind the store's back (no host_state column).
        row = ("4f7d0c3e-0d5e-4a8e-9d2b-0a6c1f3e5b71", p.id, COMPLETED, 100, "{}",
               '{"digest":"x"}', 60, 1.0, '[{"exit_code":0}]', '{"pull":1.0}')
        sql = ("INSERT INTO jobs (id, project, status, priority, spec, config, timeout, created, "
               "results, timings) VALUES ({})")
        if url.startswith("sqlite"):
            conn = sqlite3.connect(url.removeprefix("sqlite://"))
            with conn:
                conn.execute(sql.format(", ".join("?" * len(row))), row)
            conn.close()
        else:
            import asyncpg

            conn = await asyncpg.connect(url)
            try:
                await conn.execute(sql.format(", ".join(f"${i + 1}" for i in range(len(row)))),
                                   *row)
            finally:
                await conn.close()
        monkeypatch.setattr(schema, "MIGRATIONS", full)
        db = open_database(url)
        try:
            assert await db.migrate() == schema.LATEST_VERSION  # 3, and 4 (history) since
            old = await db.get_job(row[0])
            assert old.status == COMPLETED and old.results == [{"exit_code": 0}]
            assert old.timings == {"pull": 1.0} and old.host_state is None
            assert old.iterations is None and old.testbed is None and old.pin_runner is None
            r, _ = await db.create_runner("r", (p.id,))
            job = await submit(db, p.id)
            assert job.host_state is None
            await db.claim_job(r, 10.0)
            changed, now = await db.transition(job.id, FAILED, from_=(CLAIMED,), runner=r.id,
                                               at=11.0, results=[], error="x",
                                               host_state=HOST_STATE)
            assert changed and now.host_state == HOST_STATE
            assert (await db.get_job(job.id)).host_state == HOST_STATE
        finally:
            await db.close()

    asyncio.run(main())


# --- secrets and authentication ---

def test_secrets_stored_only_as_hashes(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        token = await db.create_token("ci", admin=False, projects=(p.id,))
        runner, key = await db.create_runner("r1", (p.id,))
        assert token.startswith("benchrun_user_") and len(token) == 14 + 32
        assert key.startswith("bencher_runner_") and len(key) == 15 + 30
        assert key[15:].isalnum() and key[15:].isascii()
        text = await dump_tables(url, ("tokens", "runners"))
        for secret in (token, key):
            assert secret not in text and secret[-30:] not in text
            assert hashlib.sha256(secret.encode()).hexdigest() in text

    with_db(url, body)


def test_auth_token(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        assert await db.count_tokens() == 0
        admin = await db.create_token("root", admin=True)
        user = await db.create_token("ci", admin=False, projects=(p.id,))
        a = await db.auth_token(admin)
        u = await db.auth_token(user)
        assert a is not None and a.admin and a.name == "root" and a.can_see("anything")
        assert u is not None and not u.admin and u.projects == (p.id,)
        assert u.can_see(p.id) and not u.can_see("other")
        assert await db.count_tokens() == 2
        assert await db.auth_token(user[:-1] + ("a" if user[-1] != "a" else "b")) is None
        assert await db.auth_token("") is None
        assert await db.auth_token("benchrun_user_' OR 1=1 --") is None

    with_db(url, body)


def test_auth_runner(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        r1, k1 = await db.create_runner("r1", (p.id,))
        r2, k2 = await db.create_runner("r2", ())
        assert (await db.auth_runner("r1", k1)) == r1
        assert (await db.auth_runner(r1.id, k1)) == r1
        assert await db.auth_runner("r1", k2) is None  # another runner's key
        assert await db.auth_runner(r2.id, k1) is None
        assert await db.auth_runner("r1", k1[:-1] + ("x" if k1[-1] != "x" else "y")) is None
        assert await db.auth_runner("nobody", k1) is None
        assert await db.auth_runner("r1", "") is None
        with pytest.raises(ConfigError):
            await db.create_runner("r1", ())
        with pytest.raises(ConfigError):
            await db.create_runner("Bad Name", ())

        archived = await db.update_runner("r1", archived=True, at=123.0)
        assert archived is not None and archived.archived
        assert await db.auth_runner("r1", k1) is None
        assert [r.archived for r in await db.list_runners()] == [True, False]
        assert (await db.update_runner(r1.id, archived=False, at=0)).archived is False
        assert (await db.auth_runner("r1", k1)) is not None

        k1b = await db.rotate_runner_key("r1")
        assert k1b is not None and k1b != k1
        assert await db.auth_runner("r1", k1) is None
        assert (await db.auth_runner("r1", k1b)).id == r1.id
        assert await db.rotate_runner_key("nobody") is None
        assert await db.update_runner("nobody", archived=True, at=1) is None

        moved = await db.update_runner("r2", projects=(p.id,), at=0)
        assert moved.projects == (p.id,) and (await db.get_runner(r2.id)).projects == (p.id,)
        await db.touch_runner(r2.id, 1000.0)
        assert (await db.get_runner("r2")).last_seen == 1000.0

    with_db(url, body)


def test_projects(url):
    async def body(db: Database) -> None:
        p = await db.create_project("alpha")
        assert await db.get_project("alpha") == p and await db.get_project(p.id) == p
        assert await db.get_project("beta") is None
        with pytest.raises(ConfigError):
            await db.create_project("alpha")
        with pytest.raises(ConfigError):
            await submit(db, "no-such-project")

    with_db(url, body)


# --- claiming ---

def test_claim_order_priority_then_age(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        runner, _ = await db.create_runner("r", (p.id,))
        old_low = await submit(db, p.id, priority=0, at=100.0)
        new_high = await submit(db, p.id, priority=200, at=300.0)
        old_high = await submit(db, p.id, priority=200, at=200.0)
        mid = await submit(db, p.id, priority=100, at=50.0)
        got = [await db.claim_job(runner, 1000.0 + i) for i in range(5)]
        assert [j.id for j in got[:4]] == [old_high.id, new_high.id, mid.id, old_low.id]
        assert got[4] is None
        first = await db.get_job(old_high.id)
        assert first.status == CLAIMED and first.runner == runner.id and first.claimed == 1000.0
        assert first.spec == SPEC and first.config == CONFIG and first.timeout == 60

    with_db(url, body)


def test_claim_only_own_projects(url):
    async def body(db: Database) -> None:
        mine = await db.create_project("mine")
        theirs = await db.create_project("theirs")
        runner, _ = await db.create_runner("r", (mine.id,))
        idle, _ = await db.create_runner("idle", ())
        other = await submit(db, theirs.id, priority=200)
        assert await db.claim_job(runner, time.time()) is None
        job = await submit(db, mine.id, priority=0)
        assert await db.claim_job(idle, time.time()) is None
        assert (await db.claim_job(runner, time.time())).id == job.id
        assert await db.claim_job(runner, time.time()) is None
        assert (await db.get_job(other.id)).status == PENDING

    with_db(url, body)


async def _setup_jobs(url: str, n: int) -> tuple[str, list[str], Runner]:
    db = open_database(url)
    try:
        await db.migrate()
        p = await db.create_project("load")
        runner, _ = await db.create_runner("load", (p.id,))
        ids = [(await submit(db, p.id, priority=i % 3, at=1000.0 + i)).id for i in range(n)]
        return p.id, ids, runner
    finally:
        await db.close()


@pytest.mark.parametrize("claimers", [3, 8])
def test_concurrent_claims_in_process(url, claimers):
    """Separate Database objects (connections) in one loop race for 200 jobs."""
    async def main() -> tuple[list[str], list[list[str]], float]:
        _, ids, runner = await _setup_jobs(url, 200)
        dbs = [open_database(url) for _ in range(claimers)]
        try:
            for db in dbs:
                await db.get_job("warm-up")

            async def claimer(db: Database) -> list[str]:
                got = []
                while (job := await db.claim_job(runner, time.time())) is not None:
                    got.append(job.id)
                return got

            t0 = time.perf_counter()
            results = await asyncio.gather(*(claimer(db) for db in dbs))
            return ids, results, time.perf_counter() - t0
        finally:
            for db in dbs:
                await db.close()

    ids, results, elapsed = asyncio.run(main())
    claimed = [j for got in results for j in got]
    assert len(claimed) == len(set(claimed)) == 200 and set(claimed) == set(ids)
    print(f"\n{url.split(':')[0]}: {claimers} in-process claimers, 200 claims in "
          f"{elapsed * 1000:.0f} ms ({200 / elapsed:.0f}/s)")


def test_concurrent_claims_across_processes(url):
    """Six processes, each with its own Database, start together and claim 200 jobs: every job is
    claimed exactly once (PG: FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE + busy_timeout)."""
    _, ids, runner = asyncio.run(_setup_jobs(url, 200))
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=claim_all, args=(url, runner.__dict__, barrier, out))
             for _ in range(n)]
    for proc in procs:
        proc.start()
    try:
        barrier.wait(60)
        t0 = time.perf_counter()
        results = [out.get(timeout=120) for _ in procs]
        elapsed = time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [r for kind, r in results if kind != "ok"]
    assert not errors
    claimed = [j for _, got in results for j in got]
    assert len(claimed) == len(set(claimed)) == 200 and set(claimed) == set(ids)
    assert sum(1 for _, got in results if got) >= 2  # they really raced
    print(f"\n{url.split(':')[0]}: {n} claimer processes, 200 claims in {elapsed * 1000:.0f} ms")

    async def check(db: Database) -> None:
        jobs = await db.list_jobs(projects=None, limit=1000)
        assert len(jobs) == 200 and all(j.status == CLAIMED and j.runner == runner.id for j in jobs)

    with_db(url, check)


# --- transitions, heartbeats, listings ---

def test_transitions_are_conditional(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        r, _ = await db.create_runner("r", (p.id,))
        other, _ = await db.create_runner("other", (p.id,))
        job = await submit(db, p.id)
        await db.claim_job(r, 10.0)

        # Wrong from-state: nothing changes.
        changed, now = await db.transition(job.id, COMPLETED, from_=(RUNNING,), at=11.0)
        assert not changed and now.status == CLAIMED and now.ended is None
        # Wrong runner: nothing changes.
        changed, now = await db.transition(job.id, RUNNING, from_=(CLAIMED,), runner=other.id,
                                           at=11.0)
        assert not changed and now.status == CLAIMED and now.started is None
        changed, now = await db.transition(job.id, RUNNING, from_=(CLAIMED,), runner=r.id, at=12.0)
        assert changed and now.status == RUNNING and now.started == 12.0
        # Duplicate `running`: a no-op.
        changed, again = await db.transition(job.id, RUNNING, from_=(CLAIMED,), runner=r.id,
                                             at=13.0)
        assert not changed and again == now
        assert now.host_state is None  # none until a terminal message brings one
        # Runner silent: the server fails the job.
        changed, now = await db.transition(job.id, FAILED, from_=(CLAIMED, RUNNING), at=20.0,
                                           error="runner went away", reason="heartbeat_timeout")
        assert changed and now.status == FAILED and now.ended == 20.0
        assert now.reason == "heartbeat_timeout" and now.error == "runner went away"
        # A late `completed`: refused unless the server lets it override FAILED.
        results = [{"exit_code": 0, "stdout": "ok\u0000\udcff é"}]
        changed, now = await db.transition(job.id, COMPLETED, from_=(CLAIMED, RUNNING),
                                           runner=r.id, at=21.0, results=results)
        assert not changed and now.status == FAILED and now.results is None
        changed, now = await db.transition(job.id, COMPLETED, from_=(CLAIMED, RUNNING, FAILED),
                                           runner=r.id, at=22.0, results=results,
                                           timings={"pull": 1.5, "run": 3.25},
                                           host_state=HOST_STATE)
        assert changed and now.status == COMPLETED and now.ended == 22.0
        assert now.results == results and now.timings == {"pull": 1.5, "run": 3.25}
        assert now.host_state == HOST_STATE
        assert now.started == 12.0 and now.runner == r.id
        # The duplicate `completed`.
        changed, again = await db.transition(job.id, COMPLETED, from_=(CLAIMED, RUNNING),
                                             runner=r.id, at=23.0, results=[])
        assert not changed and again == now
        changed, now = await db.transition(job.id, PROCESSED, from_=(COMPLETED,), at=24.0)
        assert changed and now.status == PROCESSED
        assert await db.transition("no-such-job", CANCELED, from_=(PENDING,), at=1.0) == \
            (False, None)
        assert (await db.transition(job.id, CANCELED, from_=(), at=1.0))[0] is False

    with_db(url, body)


def test_requeue_and_heartbeat(url):
    async def body(db: Database) -> None:
        p = await db.create_project("p")
        r, _ = await db.create_runner("r", (p.id,))
        other, _ = await db.create_runner("other", (p.id,))
        job = await submit(db, p.id)
        assert (await db.heartbeat(job.id, r.id, 5.0)).last_heartbeat is None  # not claimed
        await db.claim_job(r, 10.0)
        assert (await db.heartbeat(job.id, r.id, 11.0)).last_heartbeat == 11.0
        assert (await db.heartbeat(job.id, other.id, 12.0)).last_heartbeat == 11.0
        assert await db.heartbeat("no-such-job", r.id, 12.0) is None
        # Back to pending (e.g. the server requeues): claimable again, and waiters wake.
        waiter = asyncio.ensure_future(db.wait_for_work(5))
        await asyncio.sleep(0.05)
        changed, now = await db.transition(job.id, PENDING, from_=(CLAIMED,), at=13.0)
        assert changed and now.status == PENDING
        assert await asyncio.wait_for(waiter, 2) is True
        assert (await db.claim_job(other, 14.0)).runner == other.id
        await db.transition(job.id, CANCELED, from_=(CLAIMED, RUNNING), at=15.0)
        assert (await db.heartbeat(job.id, other.id, 16.0)).last_heartbeat == 11.0

    with_db(url, body)


def test_list_jobs_and_in_flight(url):
    async def body(db: Database) -> None:
        a = await db.create_project("a")
        b = await db.create_project("b")
        r, _ = await db.create_runner("r", (a.id, b.id))
        ja = [await submit(db, a.id, at=100.0 + i) for i in range(5)]
        jb = [await submit(db, b.id, at=200.0 + i) for i in range(3)]
        claimed = await db.claim_job(r, 300.0)  # all priority 100: the oldest, ja[0]
        assert claimed.id == ja[0].id
        second = await db.claim_job(r, 301.0)
        await db.transition(second.id, RUNNING, from_=(CLAIMED,), at=302.0)
        third = await db.claim_job(r, 303.0)
        await db.transition(third.id, COMPLETED, from_=(CLAIMED,), at=304.0)

        ids = lambda jobs: [j.id for j in jobs]  # noqa: E731
        every = ja + jb
        newest_first = sorted(every, key=lambda j: -j.created)
        assert ids(await db.list_jobs(projects=None)) == ids(newest_first)
        assert ids(await db.list_jobs(projects=(b.id,))) == ids(jb[::-1])
        assert await db.list_jobs(projects=()) == []
        assert ids(await db.list_jobs(projects=(a.id,), status=PENDING)) == ids(ja[3:][::-1])
        assert ids(await db.list_jobs(projects=None, runner=r.id)) == [third.id, second.id,
                                                                       claimed.id]
        assert ids(await db.list_jobs(projects=None, limit=2)) == [jb[2].id, jb[1].id]
        assert ids(await db.list_jobs(projects=None, before=103.0)) == ids(ja[:3][::-1])
        flight = await db.in_flight_jobs()
        assert ids(flight) == [claimed.id, second.id]
        assert [j.status for j in flight] == [CLAIMED, RUNNING]

    with_db(url, body)


# --- wakeups and events (PostgreSQL: across Database objects, as across processes) ---

def _pair(url: str) -> Callable[[Database], Awaitable[Database]]:
    """The Database that makes changes: a second one for PG (proves NOTIFY), the same for SQLite
    (its signals are in-process by design)."""
    async def other(db: Database) -> Database:
        if url.startswith("sqlite"):
            return db
        second = open_database(url)
        await second.migrate()
        return second
    return other


def test_wait_for_work(url):
    async def body(db: Database) -> None:
        writer = await _pair(url)(db)
        try:
            p = await writer.create_project("p")
            t0 = time.perf_counter()
            assert await db.wait_for_work(0.2) is False
            assert 0.18 < time.perf_counter() - t0 < 5.0  # waited its timeout, and no longer
            for _ in range(3):
                waiter = asyncio.ensure_future(db.wait_for_work(10))
                await asyncio.sleep(0.1)
                assert not waiter.done()
                await submit(writer, p.id)
                submitted = time.perf_counter()
                assert await asyncio.wait_for(waiter, 5) is True
                latency = time.perf_counter() - submitted
                assert latency < 0.1, f"woke {latency * 1000:.0f} ms after the submit"
        finally:
            if writer is not db:
                await writer.close()

    with_db(url, body)


def test_events(url):
    async def body(db: Database) -> None:
        writer = await _pair(url)(db)
        try:
            p = await writer.create_project("p")
            r, _ = await writer.create_runner("r", (p.id,))
            events = db.events()
            job = await submit(writer, p.id, at=1.0)
            await writer.claim_job(r, 2.0)
            await writer.transition(job.id, RUNNING, from_=(CLAIMED,), at=3.0)
            await writer.heartbeat(job.id, r.id, 4.0)
            await writer.transition(job.id, RUNNING, from_=(CLAIMED,), at=4.5)  # no change
            await writer.transition(job.id, COMPLETED, from_=(RUNNING,), at=5.0)
            got = [await asyncio.wait_for(events.__anext__(), 5) for _ in range(5)]
            assert [(e.kind, e.status, e.at) for e in got] == [
                ("submitted", PENDING, 1.0), ("job", CLAIMED, 2.0), ("job", RUNNING, 3.0),
                ("heartbeat", RUNNING, 4.0), ("job", COMPLETED, 5.0)]
            assert all(e.job == job.id and e.project == p.id for e in got)
            nothing = asyncio.ensure_future(events.__anext__())
            await asyncio.sleep(0.2)
            assert not nothing.done()  # the unchanged transition sent nothing
            await events.aclose()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(nothing, 1)
        finally:
            if writer is not db:
                await writer.close()

    with_db(url, body)


def test_postgres_listener_reconnects(pg_dsn):
    """The LISTEN connection is killed: waiters wake (a submit may have been missed), it
    reconnects, and later submits and events arrive again."""
    import asyncpg

    from benchrun.server.db.postgres import LISTENER_NAME

    async def body(db: Database) -> None:
        writer = await _pair(pg_dsn)(db)
        admin = await asyncpg.connect(pg_dsn)
        try:
            p = await writer.create_project("p")
            events = db.events()
            waiter = asyncio.ensure_future(db.wait_for_work(10))
            await asyncio.sleep(0.05)
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()", LISTENER_NAME)
            assert killed == 2  # db's and writer's
            assert await asyncio.wait_for(waiter, 5) is True
            deadline = time.monotonic() + 10
            while await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND datname = current_database()", LISTENER_NAME) < 2:
                assert time.monotonic() < deadline, "the listeners did not come back"
                await asyncio.sleep(0.05)
            waiter = asyncio.ensure_future(db.wait_for_work(10))
            await asyncio.sleep(0.05)
            job = await submit(writer, p.id)
            assert await asyncio.wait_for(waiter, 1) is True
            assert (await asyncio.wait_for(events.__anext__(), 5)).job == job.id
        finally:
            await admin.close()
            await writer.close()

    with_db(pg_dsn, body)


def test_events_end_on_close(url):
    async def main() -> None:
        db = open_database(url)
        await db.migrate()
        events = db.events()
        pending = asyncio.ensure_future(events.__anext__())
        waiter = asyncio.ensure_future(db.wait_for_work(30))
        await asyncio.sleep(0.05)
        await db.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 2)
        await asyncio.wait_for(waiter, 2)

    asyncio.run(main())


def test_slow_subscriber_drops_oldest():
    async def main() -> None:
        hub = EventHub(maxsize=3)
        sub = hub.subscribe()
        for i in range(10):
            hub.publish(Event(kind="job", job=str(i), project="p", status=0, at=float(i)))
        assert sub.dropped == 7
        assert [(await sub.__anext__()).job for _ in range(3)] == ["7", "8", "9"]

    asyncio.run(main())
