"""The runner channel: one WebSocket per runner at /v0/runners/{runner}/channel, server side of
Bencher's runner protocol (docs/jobs.md; upstream plus/api_runners/src/channel.rs, notes 1.5-1.6).

Design: one task reads frames into an inbox; the per-connection state machine below is the only
task that sends, and it waits on that inbox alone. Wakeups (a job was submitted) and cancel
requests (REST, hard timeout, another server process) are inbox items too, so "wait for the
runner OR a new job OR a cancel" is one await with one deadline.

States: Idle (wait for `ready`; terminal messages resent after a reconnect are processed here)
-> Claim (long poll up to poll_timeout: claim, else wait for a wakeup; `no_job` at the deadline)
-> Executing{job} (running/heartbeat/terminal, each answered; heartbeat read timeout fails the
job) -> Idle again on the same connection after a terminal message.

Rules kept from upstream: every valid message except `ready` resets the heartbeat timer while
executing; invalid JSON, binary frames and pings do not; a message about another job is a
protocol error (the channel closes with code 1008 and the reason); duplicate terminal messages
are acknowledged again (idempotent); a late `completed` overrides a heartbeat-timeout failure.
Differences: claims wake on a notification instead of polling every second; a runner that
reconnects mid-job and sends `running`/`heartbeat` while idle resumes its in-flight job on the new
connection; oversized messages close the channel with 1009 (aiohttp enforces max_msg_size).

Credentials (issue 11, finding 7): a channel holds the hash of the key it authenticated with. Every
valid message re-checks that it is still the runner's key (and the runner is not deleted), and the
claim, result and heartbeat statements carry the same condition, so nothing a revoked channel sends
after the rotation commits changes a job. A rotation or deletion anywhere (revocation listener:
in process, or PostgreSQL NOTIFY) closes the runner's channels here at once with 1008
"runner_key_revoked"; the sweeper re-checks every open channel as a safety net for a lost
notification. Each `job` message carries a fresh `claim` id; results and heartbeats answer that
claim (implicitly on the channel executing it, explicitly otherwise) and change nothing for a claim
that is not the job's current one. JSON nested deeper than 64 or with numbers that are not finite
64-bit values closes the channel with 1008 (jobs.safejson).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Optional

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from benchrun.errors import ProtocolError
from benchrun.jobs import protocol as p
from benchrun.jobs.safejson import UnsafeJson
from benchrun.server import auth
from benchrun.server.db.base import Job, Runner
from benchrun.server.db.keys import secret_hash
from benchrun.server.liveness import (
    IN_FLIGHT,
    arm_disconnect_timer,
    cancel_overdue,
    disarm_disconnect_timer,
    expire_silent,
    hard_deadline,
)
from benchrun.server.state import STATE_KEY, ServerState

log = logging.getLogger("benchrun.server.channel")


# Inbox item kinds besides WebSocket frames.
_CLOSED = "closed"
_WAKE = "wake"
_CANCEL = "cancel"
_REVOKED = "revoked"
REVOKED_REASON = "runner_key_revoked"


class _Done(Exception):
    """The channel is over (closed by either side)."""


class _Violation(Exception):
    """The runner broke the protocol; the channel closes with 1008 and this message."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _close_reason(reason: str) -> bytes:
    """A JSON CloseReason, e.g. "heartbeat_timeout" (with the quotes), as upstream."""
    return json.dumps(reason).encode()


def claimed_job_message(job: Job, oci_token: str) -> dict[str, Any]:
    return p.ClaimedJob(
        uuid=job.id,
        spec=p.parse_spec(job.spec),
        config=p.parse_config(job.config),
        oci_token=oci_token,
        timeout=job.timeout,
        created=_iso(job.created),
        claim=job.claim,
    ).to_message()


class RunnerChannel:
    def __init__(
        self,
        state: ServerState,
        runner: Runner,
        key_hash: str,
        ws: web.WebSocketResponse,
        peer: str,
    ) -> None:
        self.state = state
        self.db = state.db
        self.cfg = state.config
        self.runner = runner
        self.key_hash = key_hash  # SHA-256 of the key this channel authenticated with
        self.ws = ws
        self.peer = peer
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.job: Optional[str] = None  # the job this connection is executing
        self.claim: Optional[str] = None  # ... and the claim it executes it under
        self.done: dict[str, Optional[str]] = {}  # job id -> claim of the last job it executed
        self.hard_deadline: Optional[float] = None  # wall clock
        self.cancel_sent = False
        self.deadline = 0.0  # loop time by which the runner must speak
        self._waker: Optional[asyncio.Task[None]] = None
        self._waker_gen = 0
        self._loop = asyncio.get_running_loop()

    def __repr__(self) -> str:
        return f"runner {self.runner.name} ({self.peer})"

    # --- outside -> channel ---

    def notify_cancel(self, job_id: str) -> None:
        self.inbox.put_nowait((_CANCEL, job_id))

    def notify_revoked(self) -> None:
        """The runner's key was rotated or the runner deleted somewhere: re-check the key now."""
        self.inbox.put_nowait((_REVOKED, None))

    async def close(self, code: int, reason: bytes) -> None:
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason[:123])

    # --- the connection ---

    async def run(self) -> None:
        reader = asyncio.create_task(self._read(), name=f"read-{self.runner.name}")
        self._reset_deadline()
        log.info("%s: connected", self)
        try:
            while True:
                if self.job is None:
                    await self._idle()
                else:
                    await self._executing()
        except _Done:
            pass
        except _Violation as e:
            log.warning("%s: protocol error: %s; closing", self, e)
            await self.close(WSCloseCode.POLICY_VIOLATION, f"protocol error: {e}".encode())
        except (ConnectionError, RuntimeError) as e:  # sending on a connection that just died
            log.info("%s: connection lost: %s", self, e)
        finally:
            self._stop_waker()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self.job is not None:
                self._release_job(disconnected=True)
            log.info("%s: disconnected (close code %s)", self, self.ws.close_code)

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                self.inbox.put_nowait(("frame", msg))
                if msg.type == WSMsgType.ERROR:  # e.g. 1009: aiohttp already closed the socket
                    break
        finally:
            self.inbox.put_nowait((_CLOSED, None))

    def _reset_deadline(self) -> None:
        self.deadline = self._loop.time() + self.cfg.heartbeat_timeout

    async def _next(self, until: float) -> Optional[tuple[str, Any]]:
        """The next inbox item, or None at loop time `until`. A revocation is handled here, in
        every state: the channel closes unless its key is still current."""
        while True:
            remaining = until - self._loop.time()
            if remaining <= 0 and self.inbox.empty():
                return None
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    item = await self.inbox.get()
            except TimeoutError:
                return None
            if item[0] != _REVOKED:
                return item
            await self._check_key()

    async def _check_key(self) -> None:
        """Closes the channel (1008 "runner_key_revoked") unless its key is still the runner's
        and the runner is not deleted."""
        if await self.db.runner_key_current(self.runner.id, self.key_hash):
            return
        log.warning("%s: runner key rotated or runner deleted; closing the channel", self)
        await self.close(WSCloseCode.POLICY_VIOLATION, _close_reason(REVOKED_REASON))
        raise _Done

    async def _message(self, frame: WSMessage) -> Optional[dict[str, Any]]:
        """_parse, then the key check every valid message passes before it is acted on."""
        msg = self._parse(frame)
        if msg is not None:
            await self._check_key()
        return msg

    def _parse(self, frame: WSMessage) -> Optional[dict[str, Any]]:
        """A valid runner message, or None for frames that are ignored (and do not count as a
        sign of life): binary frames, invalid JSON, unknown or malformed messages. JSON the
        server refuses outright (nested deeper than 64, numbers out of range) is a protocol
        error: the channel closes with 1008 naming it."""
        if frame.type == WSMsgType.ERROR:
            log.warning("%s: %s", self, frame.data)
            raise _Done
        if frame.type != WSMsgType.TEXT:
            log.warning(
                "%s: ignored a %s frame (the protocol is JSON text)", self, frame.type.name.lower()
            )
            return None
        try:
            return p.parse_runner_message(frame.data, self.cfg.max_message_bytes)
        except UnsafeJson as e:
            raise _Violation(str(e)) from None
        except ProtocolError as e:
            log.warning("%s: ignored an invalid message: %s", self, e)
            return None

    async def _send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_str(p.dumps(msg))

    # --- Idle ---

    async def _idle(self) -> None:
        item = await self._next(self.deadline)
        if item is None:
            log.info("%s: silent for %g s while idle; closing", self, self.cfg.heartbeat_timeout)
            await self.close(WSCloseCode.OK, _close_reason("heartbeat_timeout"))
            raise _Done
        kind, data = item
        if kind == _CLOSED:
            raise _Done
        if kind != "frame":
            return  # stale wakeups and cancels of jobs no longer executed here
        msg = await self._message(data)
        if msg is None:
            return
        self._reset_deadline()
        event = msg["event"]
        if event == "ready":
            await self._claim(msg)
        elif event in p.TERMINAL_EVENTS:
            await self._terminal(msg)
        else:  # running / heartbeat after a reconnect mid-job
            await self._resume(msg)

    # --- Claim (long poll) ---

    async def _claim(self, ready: dict[str, Any]) -> None:
        await self.db.touch_runner(self.runner.id, time.time())
        poll = ready.get("poll_timeout") or self.cfg.poll_timeout
        until = self._loop.time() + poll
        while True:
            # The wakeup wait starts before the claim, so a submit landing between an empty claim
            # and the wait is not missed.
            self._start_waker(until)
            await asyncio.sleep(0)
            job = await self.db.claim_job(self.runner, time.time(), key_hash=self.key_hash)
            if job is not None:
                self._stop_waker()
                await self._start(job)
                return
            while True:
                item = await self._next(until)
                if item is None:
                    self._stop_waker()
                    await self._send(p.no_job())
                    self._reset_deadline()
                    return
                kind, data = item
                if kind == _CLOSED:
                    raise _Done
                if kind == _WAKE:
                    if data == self._waker_gen:
                        break  # claim again
                    continue
                if kind != "frame":
                    continue
                msg = await self._message(data)
                if msg is None:
                    continue
                if msg["event"] == "ready":  # a new poll replaces the old one
                    until = self._loop.time() + (msg.get("poll_timeout") or self.cfg.poll_timeout)
                elif msg["event"] in p.TERMINAL_EVENTS:
                    await self._terminal(msg)

    def _start_waker(self, until: float) -> None:
        self._stop_waker()
        self._waker_gen += 1
        gen = self._waker_gen
        wait = max(0.0, min(until - self._loop.time(), self.cfg.claim_recheck))

        async def wake() -> None:
            await self.db.wait_for_work(wait)
            self.inbox.put_nowait((_WAKE, gen))

        self._waker = asyncio.create_task(wake(), name=f"wake-{self.runner.name}")

    def _stop_waker(self) -> None:
        if self._waker is not None:
            self._waker.cancel()
            self._waker = None

    async def _start(self, job: Job) -> None:
        self._take(job)
        log.info("%s: claimed job %s (project %s)", self, job.id, job.project)
        await self._send(claimed_job_message(job, self.cfg.oci_token))

    def _take(self, job: Job) -> None:
        self.job = job.id
        self.claim = job.claim
        self.cancel_sent = False
        self.hard_deadline = hard_deadline(job, self.cfg.job_timeout_grace)
        self.state.executing[job.id] = self
        disarm_disconnect_timer(self.state, job.id)
        self._reset_deadline()

    def _release_job(self, *, disconnected: bool = False) -> None:
        job_id, self.job = self.job, None
        if job_id is not None:  # a duplicate terminal message on this connection answers it
            self.done = {job_id: self.claim}
        self.claim = None
        self.hard_deadline = None
        if job_id is None or self.state.executing.get(job_id) is not self:
            return  # another connection of this runner took the job over
        del self.state.executing[job_id]
        if disconnected:
            log.info(
                "%s: disconnected while executing job %s; it fails in %g s unless the "
                "runner comes back",
                self,
                job_id,
                self.cfg.heartbeat_timeout,
            )
            arm_disconnect_timer(self.state, job_id)

    async def _resume(self, msg: dict[str, Any]) -> None:
        """`running`/`heartbeat` while idle: the runner reconnected mid-job. If it has exactly one
        in-flight job, this connection takes it over; otherwise the message is ignored."""
        jobs = [
            j
            for status in IN_FLIGHT
            for j in await self.db.list_jobs(
                projects=None, status=status, runner=self.runner.id, limit=2
            )
        ]
        if len(jobs) != 1:
            log.warning(
                "%s: ignored %s while idle (%d in-flight jobs)", self, msg["event"], len(jobs)
            )
            return
        claim = msg.get("claim")
        if claim is not None and claim != jobs[0].claim:
            raise _Violation(f"{msg['event']} for job {jobs[0].id}: not its current claim")
        old = self.state.executing.get(jobs[0].id)
        if old is not None and old is not self:
            old.job = None  # the old connection is stale; it must not fail the job when it ends
        self._take(jobs[0])
        log.info("%s: resumed job %s after a reconnect", self, jobs[0].id)
        await self._handle_executing(msg)

    # --- Executing ---

    async def _executing(self) -> None:
        until = self.deadline
        overdue_at: Optional[float] = None
        if self.hard_deadline is not None:
            overdue_at = self._loop.time() + (self.hard_deadline - time.time())
            until = min(until, overdue_at)
        item = await self._next(until)
        if item is None:
            if overdue_at is not None and self._loop.time() >= overdue_at:
                await self._overdue()
            else:
                await self._heartbeat_timeout()
            return
        kind, data = item
        if kind == _CLOSED:
            raise _Done
        if kind == _CANCEL:
            if data == self.job and not self.cancel_sent:
                log.info("%s: job %s was canceled; sending cancel", self, self.job)
                await self._send(p.cancel())
                self.cancel_sent = True
            return
        if kind != "frame":
            return
        msg = await self._message(data)
        if msg is None:
            return
        if msg["event"] == "ready":
            log.warning("%s: ignored ready while executing job %s", self, self.job)
            return
        self._reset_deadline()
        await self._handle_executing(msg)

    async def _handle_executing(self, msg: dict[str, Any]) -> None:
        assert self.job is not None
        event, job_id, now = msg["event"], self.job, time.time()
        if event in p.TERMINAL_EVENTS:
            if msg["job"] != job_id:
                raise _Violation(
                    f"{event} for job {msg['job']}, but this channel executes " f"{job_id}"
                )
            await self._terminal(msg)
            self._release_job()
            return
        claim = msg.get("claim") or self.claim
        if claim != self.claim:
            raise _Violation(f"{event} for claim {claim}: not this channel's claim")
        rid, key = self.runner.id, self.key_hash
        if event == "running":
            changed, job = await self.db.transition(
                job_id, p.RUNNING, from_=(p.CLAIMED,), at=now, runner=rid, claim=claim, key_hash=key
            )
            if changed and job is not None:
                log.info("%s: job %s claimed -> running", self, job_id)
            elif job is not None and job.status == p.RUNNING:
                job = await self.db.heartbeat(job_id, rid, now, claim=claim, key_hash=key)
        else:  # heartbeat
            job = await self.db.heartbeat(job_id, rid, now, claim=claim, key_hash=key)
        if job is None:
            raise _Violation(f"job {job_id} vanished")
        if job.runner != self.runner.id or job.claim != claim:
            raise _Violation(f"{event} for job {job_id}: not its current claim")
        self.hard_deadline = hard_deadline(job, self.cfg.job_timeout_grace)
        if job.status == p.RUNNING and self.hard_deadline is not None and now > self.hard_deadline:
            job = await cancel_overdue(self.state, job, now) or job
        if job.status == p.CANCELED:
            await self._send(p.cancel())
            self.cancel_sent = True
        else:
            await self._send(p.ack(job_id))

    async def _overdue(self) -> None:
        assert self.job is not None
        job = await self.db.get_job(self.job)
        self.hard_deadline = None  # once: the runner now has heartbeat_timeout to report
        if job is not None and job.status in IN_FLIGHT:
            await cancel_overdue(self.state, job, time.time())
            if not self.cancel_sent:
                await self._send(p.cancel())
                self.cancel_sent = True

    async def _heartbeat_timeout(self) -> None:
        job_id = self.job
        assert job_id is not None
        reason = "heartbeat_timeout"
        if self.state.executing.get(job_id) is self:
            job = await self.db.get_job(job_id)
            if job is not None and job.status in IN_FLIGHT:
                job = await expire_silent(self.state, job, time.time())
                if job is not None and job.reason == "job_timeout_exceeded":
                    reason = "job_timeout_exceeded"
        log.info(
            "%s: no message for %g s while executing job %s; closing (%s)",
            self,
            self.cfg.heartbeat_timeout,
            job_id,
            reason,
        )
        self._release_job()
        await self.close(WSCloseCode.OK, _close_reason(reason))
        raise _Done

    # --- terminal messages (executing, or idle after a reconnect) ---

    async def _terminal(self, msg: dict[str, Any]) -> None:
        event, job_id, now = msg["event"], msg["job"], time.time()
        job = await self.db.get_job(job_id)
        if job is None or job.runner != self.runner.id:
            raise _Violation(f"{event} for job {job_id}, which is not this runner's")
        # The claim this result answers: the one the message names, else the channel's own for
        # the job it executes or just executed (upstream runners send none); a result resent on
        # another connection must name it.
        claim = msg.get("claim") or (self.claim if job_id == self.job else self.done.get(job_id))
        if claim is None:
            raise _Violation(f"{event} for job {job_id} names no claim")
        if claim != job.claim or (self.job == job_id and claim != self.claim):
            # (Close reasons hold 123 bytes: one UUID per message.)
            raise _Violation(f"{event} for job {job_id}: not its current claim")
        timings = msg.get("timings") or None
        host_state = msg.get("host_state")  # benchrun extension (validated by the protocol)
        # benchrun extensions: each iteration's metrics and times, the testbed facts.
        extras = {"iterations": msg.get("iterations"), "testbed": msg.get("testbed")}
        mine: dict[str, Any] = {"runner": self.runner.id, "claim": claim, "key_hash": self.key_hash}
        if event == "completed":
            changed, cur = await self.db.transition(
                job_id,
                p.COMPLETED,
                from_=IN_FLIGHT,
                at=now,
                **mine,
                results=msg["results"],
                timings=timings,
                host_state=host_state,
                **extras,
            )
            if (
                not changed
                and cur is not None
                and cur.status == p.FAILED
                and cur.reason == "heartbeat_timeout"
            ):
                # The runner is the authority: its result beats our guess that it died.
                changed, cur = await self.db.transition(
                    job_id,
                    p.COMPLETED,
                    from_=(p.FAILED,),
                    **mine,
                    at=now,
                    results=msg["results"],
                    timings=timings,
                    host_state=host_state,
                    **extras,
                    error="",
                    reason="completed_after_heartbeat_timeout",
                )
        elif event == "failed":
            changed, cur = await self.db.transition(
                job_id,
                p.FAILED,
                from_=IN_FLIGHT,
                at=now,
                **mine,
                results=msg["results"],
                error=msg["error"],
                timings=timings,
                host_state=host_state,
                **extras,
            )
            if (
                not changed
                and cur is not None
                and cur.status == p.FAILED
                and cur.reason == "heartbeat_timeout"
            ):
                changed, cur = await self.db.transition(
                    job_id,
                    p.FAILED,
                    from_=(p.FAILED,),
                    **mine,
                    at=now,
                    results=msg["results"],
                    error=msg["error"],
                    timings=timings,
                    host_state=host_state,
                    **extras,
                    reason="failed_after_heartbeat_timeout",
                )
        else:
            changed, cur = await self.db.transition(
                job_id,
                p.CANCELED,
                from_=IN_FLIGHT,
                at=now,
                **mine,
                reason="job_canceled_by_runner",
            )
        if not changed:
            await self._check_key()  # revoked between the frame's check and the UPDATE
            if cur is not None and cur.claim != claim:
                raise _Violation(f"{event} for job {job_id}: not its current claim")
        status = p.STATUS_NAMES[cur.status] if cur is not None else "gone"
        if changed:
            log.info("%s: job %s %s -> %s", self, job_id, p.STATUS_NAMES[job.status], status)
        else:
            log.info(
                "%s: job %s: %s ignored, the job is already %s (acknowledged again)",
                self,
                job_id,
                event,
                status,
            )
        await self._send(p.ack(job_id))


async def channel_handler(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    if state.shutting_down:
        raise web.HTTPServiceUnavailable(
            text='{"error":"server shutting down"}', content_type="application/json"
        )
    runner = await auth.runner(request, state.db, request.match_info["runner"])
    key_hash = secret_hash(auth.bearer(request) or "")
    ws = web.WebSocketResponse(
        max_msg_size=state.config.max_message_bytes + 1, autoping=True, timeout=5.0
    )
    await ws.prepare(request)
    ch = RunnerChannel(state, runner, key_hash, ws, request.remote or "?")
    state.channels.add(ch)
    try:
        if state.shutting_down:  # the shutdown began during the upgrade and did not see us
            await ch.close(WSCloseCode.GOING_AWAY, b"server shutting down")
            return ws
        await state.db.touch_runner(runner.id, time.time())
        await ch.run()
    finally:
        state.channels.discard(ch)
        if not ws.closed:
            await ws.close()
    return ws
