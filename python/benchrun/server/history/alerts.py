"""The history service of one server process: it feeds completed jobs into the history, runs the
detection on every new point, and confirms a suspect before alerting.

Confirmation: the suspect's base and head (the jobs that produced the base and head points, or an
upload's `rerun` recipe) are queued again as 2N jobs pinned to the runner that measured the head,
in ABBA order (A B B A A B ...), at the highest priority; N per side comes from the alert
configuration, else from the testbed's noise score (benchrun.power.repetitions_for: the change
seen, halved, detected at 80 % power), else DEFAULT_REPETITIONS. When all of them have ended, the
samples of both sides are compared (detect.compare): if the change is significant in the direction
detected, the alert opens; otherwise the suspect point is marked as noise (kept, shown, left out
of later detection) and the alert ends in state "noise". The jobs stay listed in the alert.

Every process sharing a PostgreSQL database sees every job event: points are unique per source
and alerts per point, and alert state changes are conditional UPDATEs, so each step happens once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Optional

from benchrun.jobs import protocol as p
from benchrun.server.db.base import Database, Event, Job
from benchrun.server.history import detect, ingest
from benchrun.server.history import testbed as _testbed
from benchrun.server.history.store import (
    CONFIRMING,
    NOISE,
    OPEN,
    Alert,
    HistoryStore,
    NewPoint,
    Point,
    Series,
)

log = logging.getLogger("benchrun.server.history")

DEFAULT_REPETITIONS = 5
REPETITIONS_RANGE = (2, 30)
RECOVER_WINDOW = 7 * 24 * 3600.0  # seconds of completed jobs recover() looks at
CONFIRM_PRIORITY = 1000  # PRIORITY_RANGE's top: confirmations run before queued work


def abba(n: int) -> list[str]:
    """n base ("A") and n head ("B") runs interleaved: A B B A A B B A ..."""
    out: list[str] = []
    for i in range(n):
        out += ["A", "B"] if i % 2 == 0 else ["B", "A"]
    return out


def repetitions(configured: Optional[int], noise_score: Optional[float], change: float) -> int:
    if configured:
        return configured
    if noise_score is None or not math.isfinite(change) or change == 0:
        return DEFAULT_REPETITIONS
    from benchrun.power import repetitions_for

    detect_at = min(0.5, max(0.005, abs(change) / 2))
    try:
        n = repetitions_for(detect_at, max(noise_score, 1e-4))
    except Exception:  # noqa: BLE001 - too noisy to size: the most we allow
        n = REPETITIONS_RANGE[1]
    return max(REPETITIONS_RANGE[0], min(REPETITIONS_RANGE[1], n))


class HistoryService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = HistoryStore(db)
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- event intake ---
    def on_event(self, ev: Event) -> None:
        """EventHub listener: a job that ended may carry history or answer a confirmation."""
        if ev.kind != "job" or ev.status not in p.TERMINAL_STATUSES:
            return
        task = asyncio.get_running_loop().create_task(self._job_ended(ev.job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Catches up in the background (recover())."""
        task = asyncio.get_running_loop().create_task(self.recover())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self, *, since_s: float = RECOVER_WINDOW) -> tuple[int, int]:
        """What a stopped server may have left undone: completed history jobs of the last
        `since_s` seconds without points (the process ended between the job's completion and its
        ingestion), and confirmations whose jobs have all ended. Idempotent (points are unique
        per job, alert decisions conditional). Returns (jobs ingested, alerts decided)."""
        ingested = decided = 0
        try:
            rows = await self.db.fetch(
                "SELECT id FROM jobs WHERE status = ? AND ended > ? AND spec LIKE ? "
                "AND NOT EXISTS (SELECT 1 FROM points WHERE points.job = jobs.id) "
                "ORDER BY ended LIMIT 1000",
                (p.COMPLETED, time.time() - since_s, '%"history":%'),
            )
            for r in rows:
                job = await self.db.get_job(r["id"])
                if job is not None and isinstance(job.spec.get("history"), dict):
                    ingested += bool(await self.ingest_job(job))
            for r in await self.db.fetch(
                "SELECT id FROM alerts WHERE state = ? ORDER BY created LIMIT 1000", (CONFIRMING,)
            ):
                decided += (await self.confirmation_progress(r["id"])) is not None
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - recovery must not stop the server
            log.exception("history: recovery")
        if ingested or decided:
            log.info("history: recovered %d job(s), decided %d alert(s)", ingested, decided)
        return ingested, decided

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _job_ended(self, job_id: str) -> None:
        try:
            job = await self.db.get_job(job_id)
            if job is None:
                return
            if job.status == p.COMPLETED and isinstance(job.spec.get("history"), dict):
                await self.ingest_job(job)
            if isinstance(job.spec.get("confirmation"), dict):
                await self.confirmation_progress(job.spec["confirmation"].get("alert"))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad job must not stop the service
            log.exception("history: job %s", job_id)

    # --- points ---
    async def ingest_job(self, job: Job) -> list[tuple[Series, Point]]:
        hist = job.spec["history"]
        runner = await self.db.get_runner(job.runner) if job.runner else None
        runner_name = runner.name if runner else "unknown"
        facts = _testbed.job_facts(job.testbed, runner_name)
        tb = await self.store.testbed(
            job.project,
            _testbed.fingerprint_of_job(job.testbed, runner_name),
            facts,
            f"{runner_name}-{_testbed.fingerprint_of_job(job.testbed, runner_name)[:8]}",
            job.runner,
        )
        samples = ingest.job_samples(job.results, job.iterations, hist, job.config.get("image"))
        points = [
            NewPoint(
                branch=hist["branch"],
                testbed=tb.id,
                benchmark=bench,
                measure=measure,
                unit=unit,
                revision=hist["commit"],
                samples=xs[: ingest.MAX_SAMPLES],
                source=f"job:{job.id}",
                at=job.ended or time.time(),
                job=job.id,
                runner=job.runner,
            )
            for (bench, measure), (unit, xs) in samples.items()
            if xs
        ]
        return await self.add(job.project, points)

    async def add(self, project: str, points: list[NewPoint]) -> list[tuple[Series, Point]]:
        """Stores the points, then runs the detection on each series that got one."""
        added = await self.store.add_points(project, points)
        for series, point in added:
            try:
                await self.watch(series, point)
            except Exception:  # noqa: BLE001 - a bad configuration must not lose the points
                log.exception("history: detection on series %s", series.id)
        return added

    # --- detection ---
    async def watch(self, series: Series, point: Point) -> list[Alert]:
        configs = await self.store.configs_for(series)
        if not configs:
            return []
        cfg = configs[0]  # the benchmark's own configuration beats the all-benchmarks one
        pts = await self.store.points(series.id, include_noise=False)
        if not pts or pts[-1].id != point.id:
            return []  # only the newest point sets off the detection
        values = [x.value for x in pts]
        alerts = []
        for s in detect.suspects(values, cfg.model, cfg.params, cfg.change_points):
            head = pts[s.index]
            base = pts[s.base] if s.base is not None and s.base >= 0 else None
            if s.kind == "change_point" and await self._near_existing(series, pts, s.index):
                continue
            detail = {**s.detail, "change": s.change, "config": cfg.id}
            alert = await self.store.create_alert(
                series, head, kind=s.kind, base=base, detail=detail
            )
            if alert is None:
                continue  # this point is already under an alert
            log.info(
                "history: %s on %s/%s/%s at %s (%+.1f %%): confirming",
                s.kind,
                series.branch,
                series.benchmark,
                series.measure,
                head.revision,
                100 * s.change if math.isfinite(s.change) else math.inf,
            )
            await self.publish(alert)
            alerts.append(await self.start_confirmation(alert, series, base, head, cfg.repetitions))
        return alerts

    async def _near_existing(self, series: Series, pts: list[Point], k: int) -> bool:
        """A change point found again a few points away is the same change."""
        ids = {x.id for x in pts[max(0, k - 5) : k + 6]}
        existing = await self.store.list_alerts(series.project, series=series.id, limit=50)
        return any(a.point in ids and a.kind == "change_point" for a in existing)

    # --- confirmation ---
    async def _recipe(self, series: Series, point: Point) -> Optional[dict[str, Any]]:
        """How to reproduce a point: its job's spec and config, an upload's `rerun`, or another
        job-made point of the same revision in the series."""
        candidates = [point] + [
            x
            for x in await self.store.points(series.id)
            if x.revision == point.revision and x.id != point.id
        ]
        for c in candidates:
            if c.job:
                job = await self.db.get_job(c.job)
                if job is not None:
                    return {"spec": job.spec, "config": job.config, "timeout": job.timeout}
            if c.rerun:
                return c.rerun
        return None

    async def start_confirmation(
        self,
        alert: Alert,
        series: Series,
        base: Optional[Point],
        head: Point,
        configured: Optional[int],
    ) -> Alert:
        base_r = await self._recipe(series, base) if base is not None else None
        head_r = await self._recipe(series, head)
        if base_r is None or head_r is None:
            which = "base" if base_r is None else "head"
            return await self._finish(
                alert,
                OPEN,
                {"status": "unavailable", "reason": f"no job or rerun recipe for the {which}"},
            )
        testbeds = {t.id: t for t in await self.store.list_testbeds(series.project)}
        tb = testbeds.get(series.testbed)
        runner = head.runner or (base.runner if base else None) or (tb.runner if tb else None)
        n = repetitions(
            configured,
            _testbed.noise_score(tb.facts) if tb else None,
            float(alert.detail.get("change", 0.0)),
        )
        order = abba(n)
        hist = head_r["spec"].get("history") or base_r["spec"].get("history") or {}
        what = {
            "alert": alert.id,
            "benchmark": series.benchmark,
            "measure": series.measure,
            "metrics": hist.get("metrics", "run"),
        }
        jobs = []
        now = time.time()
        for i, side in enumerate(order):
            r = base_r if side == "A" else head_r
            spec = {k: v for k, v in r["spec"].items() if k not in ("history", "confirmation")}
            spec["confirmation"] = {**what, "side": "base" if side == "A" else "head", "index": i}
            job = await self.db.submit_job(
                series.project,
                spec,
                r["config"],
                priority=CONFIRM_PRIORITY,
                timeout=int(r.get("timeout") or r["config"].get("timeout", 60)),
                at=now + i * 1e-3,  # claim order = created order: keeps the ABBA sequence
                pin_runner=runner,
            )
            jobs.append({"id": job.id, "side": spec["confirmation"]["side"]})
        confirmation = {
            "status": "running",
            "repetitions": n,
            "order": "".join(order),
            "runner": runner,
            "jobs": jobs,
        }
        updated = await self.store.update_alert(
            alert.id, from_=(CONFIRMING,), confirmation=confirmation
        )
        log.info("history: alert %s: %d confirmation jobs queued (%s)", alert.id, 2 * n, runner)
        return updated or alert

    async def confirmation_progress(self, alert_id: Any) -> Optional[Alert]:
        """Decides the alert once every confirmation job has ended."""
        if not isinstance(alert_id, str):
            return None
        alert = await self.store.get_alert(None, alert_id)
        if alert is None or alert.state != CONFIRMING or not alert.confirmation:
            return None
        conf = alert.confirmation
        jobs = [await self.db.get_job(j["id"]) for j in conf.get("jobs", [])]
        if any(j is None or j.status not in p.TERMINAL_STATUSES for j in jobs):
            return None
        sides: dict[str, list[float]] = {"base": [], "head": []}
        for j in jobs:
            assert j is not None
            c = j.spec.get("confirmation", {})
            if j.status != p.COMPLETED:
                continue
            hist = {
                "metrics": c.get("metrics", "run"),
                "benchmark": c.get("benchmark"),
                "measures": [c.get("measure")],
            }
            found = ingest.job_samples(j.results, j.iterations, hist, j.config.get("image"))
            xs = found.get((c.get("benchmark"), c.get("measure")), (None, []))[1]
            sides[c.get("side", "head")].extend(xs)
        if len(sides["base"]) < 2 or len(sides["head"]) < 2:
            return await self._finish(
                alert,
                OPEN,
                {**conf, "status": "failed", "reason": "too few completed confirmation runs"},
            )
        result = await asyncio.to_thread(detect.compare, sides["base"], sides["head"])
        confirmed = detect.confirms(result, float(alert.detail.get("change", 0.0)))
        conf = {
            **conf,
            "status": "confirmed" if confirmed else "not confirmed",
            "base": sides["base"],
            "head": sides["head"],
            "comparison": result,
        }
        if not confirmed:
            await self.store.mark_noise(alert.point)
        return await self._finish(alert, OPEN if confirmed else NOISE, conf)

    async def _finish(self, alert: Alert, state: int, confirmation: dict[str, Any]) -> Alert:
        updated = await self.store.update_alert(
            alert.id, from_=(CONFIRMING,), to=state, confirmation=confirmation
        )
        if updated is None:
            return alert  # another process decided it
        log.info("history: alert %s -> %s", alert.id, updated.state_name)
        await self.publish(updated)
        return updated

    async def publish(self, alert: Alert) -> None:
        await self.db.notify(
            Event(
                kind="alert",
                job=alert.id,
                project=alert.project,
                status=alert.state,
                at=time.time(),
            )
        )
