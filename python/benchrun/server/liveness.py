"""Ending in-flight jobs whose runner went silent or ran out of time (notes 1.5 steps 7-8 and
startup recovery). Three triggers share these rules: a channel's heartbeat read timeout
(channel.py), a timer armed when a runner disconnects mid-job, and a periodic sweep over all
in-flight jobs (which also recovers jobs after a restart and covers jobs whose runner talks to
another server process sharing the database).

Rules, for a claimed or running job:
- started and now > started + timeout + grace  -> canceled, reason job_timeout_exceeded
- no sign of life (last heartbeat, start or claim) for heartbeat_timeout -> failed, reason
  heartbeat_timeout (a late `completed` from the runner may still override it)
Every change is a conditional transition, so several servers applying the rules race safely.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

from benchrun.jobs.protocol import CANCELED, CLAIMED, FAILED, RUNNING, STATUS_NAMES
from benchrun.server.db.base import Job
from benchrun.server.state import ServerState

log = logging.getLogger("benchrun.server.liveness")

IN_FLIGHT = (CLAIMED, RUNNING)


def last_alive(job: Job) -> float:
    return max(t for t in (job.last_heartbeat, job.started, job.claimed, job.created) if t)


def hard_deadline(job: Job, grace: float) -> Optional[float]:
    """Wall-clock time after which a started job is canceled (upstream counts from `running`)."""
    return None if job.started is None else job.started + job.timeout + grace


def past_hard_deadline(job: Job, grace: float, now: float) -> bool:
    deadline = hard_deadline(job, grace)
    return deadline is not None and now > deadline


async def cancel_overdue(state: ServerState, job: Job, now: float) -> Optional[Job]:
    """Hard timeout: canceled/job_timeout_exceeded; the channel executing it sends `cancel`."""
    changed, cur = await state.db.transition(
        job.id,
        CANCELED,
        from_=IN_FLIGHT,
        at=now,
        reason="job_timeout_exceeded",
        error=f"job exceeded its timeout of {job.timeout} s plus a grace of "
        f"{state.config.job_timeout_grace:g} s",
    )
    if changed:
        log.info("job %s: %s -> canceled (job_timeout_exceeded)", job.id, STATUS_NAMES[job.status])
        state.request_cancel(job.id)
    return cur


async def expire_silent(state: ServerState, job: Job, now: float) -> Optional[Job]:
    """The runner went silent: canceled if past the hard deadline, else failed/heartbeat_timeout."""
    if past_hard_deadline(job, state.config.job_timeout_grace, now):
        return await cancel_overdue(state, job, now)
    changed, cur = await state.db.transition(
        job.id,
        FAILED,
        from_=IN_FLIGHT,
        at=now,
        reason="heartbeat_timeout",
        error=f"no message from runner for {state.config.heartbeat_timeout:g} s",
    )
    if changed:
        log.info(
            "job %s: %s -> failed (heartbeat_timeout, runner %s)",
            job.id,
            STATUS_NAMES[job.status],
            job.runner,
        )
    return cur


def arm_disconnect_timer(state: ServerState, job_id: str) -> None:
    """The runner of job_id disconnected mid-job: unless it comes back (a heartbeat on a new
    connection, here or on another server), the job fails after heartbeat_timeout."""
    if state.shutting_down or job_id in state.timers:
        return
    task = asyncio.create_task(_disconnect_timer(state, job_id), name=f"disconnect-{job_id}")
    state.timers[job_id] = task
    task.add_done_callback(
        lambda t: state.timers.pop(job_id, None) if state.timers.get(job_id) is t else None
    )


def disarm_disconnect_timer(state: ServerState, job_id: str) -> None:
    task = state.timers.pop(job_id, None)
    if task is not None:
        task.cancel()


async def _disconnect_timer(state: ServerState, job_id: str) -> None:
    hb = state.config.heartbeat_timeout
    delay = hb
    while True:
        await asyncio.sleep(delay)
        if job_id in state.executing:  # the runner reconnected to this process and took it back
            return
        job = await state.db.get_job(job_id)
        if job is None or job.status not in IN_FLIGHT:
            return
        now = time.time()
        if past_hard_deadline(job, state.config.job_timeout_grace, now):
            await cancel_overdue(state, job, now)
            return
        quiet = now - last_alive(job)
        if quiet < hb:  # fresh heartbeats: the runner is back, maybe on another server
            delay = hb - quiet + 0.05
            continue
        await expire_silent(state, job, now)
        return


async def sweep_once(state: ServerState) -> None:
    """One pass over every in-flight job. Jobs executed by a live channel of this process are left
    to that channel (it has the precise timers)."""
    hb = state.config.heartbeat_timeout
    for job in await state.db.in_flight_jobs():
        if state.shutting_down:
            return
        if job.id in state.executing:
            continue
        now = time.time()
        if past_hard_deadline(job, state.config.job_timeout_grace, now):
            await cancel_overdue(state, job, now)
        elif now - last_alive(job) >= hb:
            await expire_silent(state, job, now)


async def sweeper(state: ServerState) -> None:
    """Runs sweep_once at startup (recovery of jobs left in flight by a previous server process)
    and then every sweep interval."""
    while not state.shutting_down:
        # Safety net for a lost revocation notification (the PostgreSQL LISTEN connection was
        # down, or a second server on one SQLite file): every open channel re-checks its key.
        for ch in list(state.channels):
            ch.notify_revoked()
        try:
            await sweep_once(state)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a database hiccup must not end the sweeps
            log.warning("sweep failed: %s", e)
        await asyncio.sleep(state.config.sweep_every)
