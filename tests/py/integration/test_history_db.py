"""The history store (benchrun.server.history.store) and the job-table additions of schema 4
(per-iteration metrics, testbed, pinned jobs) on both backends: SQLite in tmp_path and PostgreSQL
on the session's throwaway cluster."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from benchrun.jobs.protocol import CLAIMED, COMPLETED, RUNNING
from benchrun.server.db import Database, open_database, schema
from benchrun.server.history.store import (CONFIRMING, DISMISSED, NOISE, OPEN, HistoryStore,
                                           NewPoint)

CONFIG = {"digest": "sha256:" + "0" * 64, "timeout": 60}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/jobs.db"
    return request.getfixturevalue("pg_dsn")


def with_db(url: str, body: Callable[[Database], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        db = open_database(url)
        try:
            assert await db.migrate() == schema.LATEST_VERSION
            return await body(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _point(tb: str, rev: str, xs: list[float], source: str, at: float, **kw: Any) -> NewPoint:
    return NewPoint(branch="main", testbed=tb, benchmark="fib", measure="wall_time", unit="s",
                    revision=rev, samples=xs, source=source, at=at, **kw)


def test_series_points_alerts(url):
    async def body(db: Database) -> None:
        hs = HistoryStore(db)
        a = await db.create_project("a")
        b = await db.create_project("b")
        facts = {"cpu_model": "X", "kernel": "6.1"}
        tb = await hs.testbed(a.id, "f" * 64, facts, "r1-ffffffff", None)
        assert (await hs.testbed(a.id, "f" * 64, {"other": 1}, "again", None)).id == tb.id
        tb_b = await hs.testbed(b.id, "f" * 64, facts, "r1-ffffffff", None)
        assert tb_b.id != tb.id  # testbeds are per project
        assert (await hs.find_testbed(a.id, "r1-ffffffff")).id == tb.id
        assert await hs.find_testbed(b.id, tb.id) is None

        added = await hs.add_points(a.id, [_point(tb.id, f"c{i}", [1.0 + i, 1.0, 3.0],
                                                  f"job:{i}", 100.0 + i) for i in range(4)])
        assert len(added) == 4
        series = added[0][0]
        assert {s.id for s, _ in added} == {series.id}
        p0 = added[0][1]
        assert (p0.value, p0.lower, p0.upper, p0.samples) == (1.0, 1.0, 3.0, [1.0, 1.0, 3.0])
        # The same source again (a job event seen twice, another server process): skipped.
        again = await hs.add_points(a.id, [_point(tb.id, "c0", [9.0], "job:0", 100.0)])
        assert again == []
        pts = await hs.points(series.id)
        assert [p.revision for p in pts] == ["c0", "c1", "c2", "c3"]
        assert [(s.id, n) for s, n in await hs.list_series(a.id)] == [(series.id, 4)]
        assert await hs.list_series(a.id, branch="dev") == []
        assert await hs.list_series(b.id) == []
        assert await hs.get_series(b.id, series.id) is None  # another project's id: nothing

        cfg = await hs.set_config(a.id, branch="main", benchmark="", measure="wall_time",
                                  model="percentage", params={"upper": 0.1},
                                  change_points=True, repetitions=None)
        cfg2 = await hs.set_config(a.id, branch="main", benchmark="", measure="wall_time",
                                   model="iqr", params={"upper": 3.0}, change_points=False,
                                   repetitions=4)
        assert [c.id for c in await hs.list_configs(a.id)] == [cfg2.id]  # replaced
        assert [c.model for c in await hs.configs_for(series)] == ["iqr"]
        assert await hs.list_configs(b.id) == []
        assert not await hs.delete_config(b.id, cfg2.id)

        alert = await hs.create_alert(series, pts[3], kind="threshold:iqr", base=pts[2],
                                      detail={"change": 0.5})
        assert alert.state == CONFIRMING and alert.base_revision == "c2"
        assert await hs.create_alert(series, pts[3], kind="change_point", base=None,
                                     detail={}) is None  # one alert per point
        assert await hs.get_alert(b.id, alert.id) is None
        moved = await hs.update_alert(alert.id, from_=(CONFIRMING,), to=OPEN,
                                      confirmation={"status": "confirmed"})
        assert moved.state == OPEN and moved.confirmation == {"status": "confirmed"}
        assert await hs.update_alert(alert.id, from_=(CONFIRMING,), to=NOISE) is None
        assert (await hs.update_alert(alert.id, from_=(OPEN,), to=DISMISSED)).state == DISMISSED
        assert [x.id for x in await hs.list_alerts(a.id, state=DISMISSED)] == [alert.id]
        assert await hs.list_alerts(b.id) == []
        await hs.mark_noise(pts[3].id)
        assert [p.revision for p in await hs.points(series.id, include_noise=False)] == [
            "c0", "c1", "c2"]

    with_db(url, body)


def test_pinned_jobs_and_iteration_metrics(url):
    async def body(db: Database) -> None:
        pr = await db.create_project("p")
        r1, _ = await db.create_runner("r1", (pr.id,))
        r2, _ = await db.create_runner("r2", (pr.id,))
        pinned = await db.submit_job(pr.id, {}, CONFIG, priority=5, timeout=60, at=1.0,
                                     pin_runner=r1.id)
        free = await db.submit_job(pr.id, {}, CONFIG, priority=0, timeout=60, at=2.0)
        # r2 may not take the pinned job although it is first in line; r1 takes it.
        got = await db.claim_job(r2, 3.0)
        assert got is not None and got.id == free.id
        got = await db.claim_job(r1, 3.0)
        assert got is not None and got.id == pinned.id and got.pin_runner == r1.id
        iterations = [{"metrics": {"wall_time": {"value": 0.5, "unit": "s"}}, "start": 10.0,
                       "end": 10.5}]
        testbed = {"cpu_model": "X", "backend": "sandbox"}
        await db.transition(got.id, RUNNING, from_=(CLAIMED,), runner=r1.id, at=4.0)
        changed, job = await db.transition(got.id, COMPLETED, from_=(RUNNING,), runner=r1.id,
                                           at=5.0, results=[{"exit_code": 0}],
                                           iterations=iterations, testbed=testbed)
        assert changed and job.iterations == iterations and job.testbed == testbed
        assert (await db.get_job(got.id)).iterations == iterations

    with_db(url, body)


def test_alert_events_reach_subscribers(url):
    from benchrun.server.db.base import Event

    async def body(db: Database) -> None:
        sub = db.events()
        try:
            ev = Event(kind="alert", job="a1", project="p", status=OPEN, at=1.0)
            await db.notify(ev)
            got = await asyncio.wait_for(sub.__anext__(), 10)
            assert (got.kind, got.job, got.status) == ("alert", "a1", OPEN)
        finally:
            await sub.aclose()

    with_db(url, body)


def test_recover_ingests_jobs_a_stopped_server_missed(url):
    import time

    from benchrun.server.history.alerts import HistoryService

    async def body(db: Database) -> None:
        pr = await db.create_project("p")
        r1, _ = await db.create_runner("r1", (pr.id,))
        spec = {"history": {"branch": "main", "commit": "c1", "metrics": "run",
                            "benchmark": "b"}}
        job = await db.submit_job(pr.id, spec, {**CONFIG, "image": "reg/x/app@sha256:0"},
                                  priority=0, timeout=60, at=time.time())
        await db.claim_job(r1, time.time())
        its = [{"metrics": {"wall_time": {"value": v, "unit": "s"}}} for v in (1.0, 2.0, 3.0)]
        changed, _ = await db.transition(job.id, COMPLETED, from_=(CLAIMED,), runner=r1.id,
                                         at=time.time(), results=[{"exit_code": 0}] * 3,
                                         iterations=its, testbed={"cpu_model": "X"})
        assert changed
        svc = HistoryService(db)  # no event listener ran: the server "stopped" before ingesting
        assert await svc.recover() == (1, 0)
        assert await svc.recover() == (0, 0)  # idempotent
        (series, n), = await svc.store.list_series(pr.id)
        assert (series.benchmark, series.measure, series.unit, n) == ("b", "wall_time", "s", 1)
        point, = await svc.store.points(series.id)
        assert point.value == 2.0 and point.samples == [1.0, 2.0, 3.0] and point.job == job.id
        tb, = await svc.store.list_testbeds(pr.id)
        assert tb.name.startswith("r1-") and tb.runner == r1.id

    with_db(url, body)
