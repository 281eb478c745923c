"""The agent loop: connect -> resend a pending result -> ready -> job -> heartbeats while it runs
-> terminal message -> ack, over one persistent channel, reconnecting with backoff.

Follows upstream's runner (bencher plus/bencher_runner/src/up/, docs/agent.md) except where it has
known bugs: `running` is sent when the workload starts (after the pull, which is not billed),
heartbeats flow from the claim on their own task, a cancel is reported as `canceled`, a job survives
a lost channel (the agent reconnects, resends `running`, resumes heartbeats and delivers the
result), and results are bounded by a configurable message limit (64 MiB by default).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from benchrun.jobs import protocol
from benchrun.jobs.protocol import ClaimedJob

from . import results as _results
from .cleanup import sweep_leftovers
from .config import AgentConfig
from .connection import Backoff, Connection, ConnectionLost, KeyRejected
from .executor import JobExecutor, Outcome

log = logging.getLogger("benchrun.agent")

POLL_TIMEOUT_MARGIN = 30.0  # seconds beyond poll_timeout to wait for job/no_job (as upstream)
ONCE_MARGIN = 2.0  # seconds beyond poll_timeout to wait for no_job when --once-wait runs out
ACK_DRAIN = 0.5  # seconds to wait for replies to heartbeats before sending a terminal message

EXIT_OK = 0
EXIT_FATAL = 1  # the key was refused, or a result could not be delivered in --once mode


def runner_info() -> dict[str, str]:
    """ready.runner: os, arch (upstream's spellings) and this benchrun's version."""
    from benchrun import __version__

    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return {"os": platform.system().lower(), "arch": arch, "version": __version__}


@dataclass
class _Job:
    """A job in flight. Lives across reconnects; the thread's outcome lands in ``future``."""

    claimed: ClaimedJob
    future: "asyncio.Future[Outcome]"
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False  # the workload started: `running` was (or must be) sent
    cancel_at: Optional[float] = None  # monotonic time the cancel flag was set
    canceled: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the supervisor


@dataclass
class _Pending:
    """A terminal message waiting for its ack."""

    job: str
    message: dict[str, Any]
    sends: int = 0


class Agent:
    """One runner: run() connects, takes jobs until stopped (or one job with config.once) and
    returns the exit code. request_stop() is what SIGTERM/SIGINT call."""

    def __init__(self, config: AgentConfig, executor: Optional[JobExecutor] = None) -> None:
        self.config = config
        self.executor = executor or JobExecutor(
            store=config.store,
            default_backend=config.backend,
            insecure_registries=config.insecure_registries,
            max_message=config.max_message,
        )
        self._backoff = Backoff(config.backoff_initial, config.backoff_max)
        self._stop = asyncio.Event()
        self._stops = 0
        self._job: Optional[_Job] = None
        self._pending: Optional[_Pending] = None
        self._conn: Optional[Connection] = None
        self._lost_results = 0
        self._send_runner_info = config.runner_info
        self._started = time.monotonic()
        self._once_finished = False
        self._unanswered = 0  # heartbeats/running sent on this channel without a reply yet
        self._connects_after_stop = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def request_stop(self, signame: str = "stop") -> None:
        """First call: stop taking jobs, finish (within drain_timeout) or cancel the current one,
        deliver its result, exit. A second call cancels the current job at once."""
        self._stops += 1
        self._stop.set()
        job = self._job
        if job is None:
            log.info("%s: exiting", signame)
            return
        if self._stops > 1 or self.config.drain_timeout <= 0:
            log.info("%s: canceling job %s", signame, job.claimed.uuid)
            self._cancel(job, "agent stopping")
        else:
            log.info(
                "%s: letting job %s finish within %.1f s",
                signame,
                job.claimed.uuid,
                self.config.drain_timeout,
            )
            asyncio.get_running_loop().call_later(
                self.config.drain_timeout, self._cancel, job, "drain timeout"
            )

    def _cancel(self, job: _Job, why: str) -> None:
        if job.future.done() or job.cancel.is_set():
            return
        log.info("job %s: canceling (%s)", job.claimed.uuid, why)
        job.cancel_at = time.monotonic()
        job.cancel.set()
        job.canceled.set()

    async def run(self) -> int:
        removed = await asyncio.to_thread(sweep_leftovers, self.config.store)
        if removed:
            log.info("cleaned up %d leftover(s) of a previous agent", removed)
        log.info("agent for runner %s on %s", self.config.runner, self.config.channel_url)
        try:
            while True:
                if self._done():
                    break
                conn = await self._connect()
                if conn is None:
                    break
                try:
                    await self._session(conn)
                except ConnectionLost as e:
                    log.warning("channel lost: %s", e)
                finally:
                    self._conn = None
                    await conn.close()
        except KeyRejected as e:
            log.error("%s", e)
            await self._abandon_job()
            return EXIT_FATAL
        await self._abandon_job()
        if self._lost_results and self.config.once:
            return EXIT_FATAL
        return EXIT_OK

    def _done(self) -> bool:
        if self._job is not None or self._pending is not None:
            return False
        return self._stop.is_set() or self._once_finished

    async def _connect(self) -> Optional[Connection]:
        """Connects, retrying with backoff. None when there is nothing left to do: stopping with
        no work in flight, or stopping and the server stayed unreachable for max_resends + 1
        more attempts (whatever was in flight is then logged as lost)."""
        while True:
            if self._stop.is_set():
                self._connects_after_stop += 1
                if self._connects_after_stop > self.config.max_resends + 1:
                    log.error("stopping: the server stayed unreachable")
                    return None
            try:
                conn = await Connection.open(
                    self.config.channel_url, self.config.key, self.config.max_message
                )
                self._conn = conn
                self._unanswered = 0
                log.info("connected to %s", self.config.channel_url)
                return conn
            except ConnectionLost as e:
                delay = self._backoff.next()
                log.warning("%s; retrying in %.1f s", e, delay)
            if self._stop.is_set():
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            if self._done():
                return None

    async def _abandon_job(self) -> None:
        job = self._job
        if job is not None and not job.future.done():
            self._cancel(job, "agent exiting")
            try:
                await asyncio.wait_for(asyncio.shield(job.future), self.config.cancel_grace)
            except asyncio.TimeoutError:
                log.warning("job %s: still running at exit", job.claimed.uuid)
        if self._pending is not None:
            log.error(
                "job %s: %s result not delivered", self._pending.job, self._pending.message["event"]
            )
            self._lost_results += 1

    # --- one connection ----------------------------------------------------------------------

    async def _session(self, conn: Connection) -> None:
        if self._job is not None:  # a job survived the last channel: resume it here
            if self._job.started:
                await conn.send(protocol.with_claim(protocol.running(), self._job.claimed.claim))
                self._unanswered += 1
            await self._supervise(conn)
        while self._pending is not None:
            await self._deliver(conn)
        while not self._done():
            job = await self._poll(conn)
            if job is None:
                continue
            self._start(job)
            await self._supervise(conn)
            while self._pending is not None:
                await self._deliver(conn)

    async def _poll(self, conn: Connection) -> Optional[ClaimedJob]:
        """ready -> job | no_job. None when there is no job (or when asked to stop)."""
        poll = self.config.poll_timeout
        deadline = time.monotonic() + poll + POLL_TIMEOUT_MARGIN
        once_deadline = None
        if self.config.once and self.config.once_wait is not None:
            left = self.config.once_wait - (time.monotonic() - self._started)
            if left <= 0:
                return self._no_job_in_time()
            poll = max(1, min(poll, int(left + 0.999)))
            # The server answers no_job after `poll` seconds; do not wait longer than that.
            once_deadline = time.monotonic() + poll + ONCE_MARGIN
        await conn.send(protocol.ready(poll, runner_info() if self._send_runner_info else None))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                if once_deadline is not None and time.monotonic() >= once_deadline:
                    return self._no_job_in_time()
                left = min(deadline, once_deadline or deadline) - time.monotonic()
                if left <= 0:
                    waited = poll + POLL_TIMEOUT_MARGIN
                    raise ConnectionLost(f"no reply to ready within {waited:.0f} s")
                recv = asyncio.ensure_future(conn.recv(left))
                await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not recv.done():
                    recv.cancel()
                    # Stopping. A job the server sent just now is taken (and canceled at once by
                    # _start), so the server hears `canceled` instead of waiting for a timeout.
                    msg = await conn.recv(0.1)
                    return msg["claimed"] if msg is not None and msg["event"] == "job" else None
                msg = recv.result()
                if msg is None:
                    continue
                event = msg["event"]
                if event == "job":
                    self._backoff.reset()
                    return msg["claimed"]
                if event == "no_job":
                    self._backoff.reset()
                    return None
                if event == "update":
                    self._send_runner_info = False
                    log.warning(
                        "the server offers runner version %s (%s); benchrun's agent does "
                        "not self-update, and stops sending runner metadata in ready",
                        msg.get("version"),
                        msg.get("url"),
                    )
                    continue
                if event == "cancel":
                    log.warning("ignoring cancel while idle (no job is running)")
                # ack: a late reply to an earlier message
        finally:
            stop.cancel()

    def _no_job_in_time(self) -> Optional[ClaimedJob]:
        """None, the poll's answer when --once-wait passed without a job."""
        log.info("--once: no job within %g s", self.config.once_wait)
        self._once_finished = True
        return None

    def _start(self, claimed: ClaimedJob) -> None:
        loop = asyncio.get_running_loop()
        job = _Job(claimed, loop.create_future())
        self._job = job
        if self._stop.is_set():
            self._cancel(job, "agent stopping")
        c = claimed.config
        log.info(
            "job %s: claimed (iter %s, timeout %d s, cpu %d, memory %d)",
            claimed.uuid,
            c.iter,
            claimed.timeout,
            claimed.spec.cpu,
            claimed.spec.memory,
        )

        def on_running() -> None:  # job thread: send `running` before the workload starts
            try:
                asyncio.run_coroutine_threadsafe(self._send_running(job), loop).result(timeout=2)
            except Exception:
                pass  # the channel is down: `running` goes out after the reconnect

        def work() -> None:
            try:
                outcome = self.executor.run(claimed, job.cancel, on_running)
            except BaseException as e:  # a bug, not the job's failure: report it, never hang
                log.exception("job %s: executor error", claimed.uuid)
                outcome = Outcome("failed", error=f"benchrun agent error: {e}")
            try:
                loop.call_soon_threadsafe(_set_result, job.future, outcome)
            except RuntimeError:
                pass  # an abandoned job ending after the agent's loop closed

        # A daemon thread, not an executor: a pull that cannot be stopped must not block exit.
        threading.Thread(target=work, name=f"job-{claimed.uuid[:8]}", daemon=True).start()

    async def _send_running(self, job: _Job) -> None:
        job.started = True
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                await conn.send(protocol.with_claim(protocol.running(), job.claimed.claim))
                self._unanswered += 1
                log.info("job %s: running", job.claimed.uuid)
            except ConnectionLost:
                pass

    async def _supervise(self, conn: Connection) -> None:
        """Heartbeats and cancels until the job ends; then its terminal message is pending."""
        job = self._job
        assert job is not None
        beats = asyncio.ensure_future(self._heartbeats(conn, job))
        messages = asyncio.ensure_future(self._job_messages(conn, job))
        canceled = asyncio.ensure_future(job.canceled.wait())
        try:
            while not job.future.done():
                wait = None
                if job.cancel_at is not None:
                    wait = max(0.0, job.cancel_at + self.config.cancel_grace - time.monotonic())
                awaited: set[asyncio.Future[Any]] = {job.future, messages, canceled}
                await asyncio.wait(awaited, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if messages.done():
                    messages.result()  # raises ConnectionLost: the job goes on, we reconnect
                if (
                    not job.future.done()
                    and job.cancel_at is not None
                    and time.monotonic() >= job.cancel_at + self.config.cancel_grace
                ):
                    log.warning(
                        "job %s: did not stop within %.1f s of the cancel; abandoning "
                        "its thread",
                        job.claimed.uuid,
                        self.config.cancel_grace,
                    )
                    _set_result(job.future, Outcome("canceled"))
        finally:
            for task in (beats, messages, canceled):
                task.cancel()
            await asyncio.gather(beats, messages, canceled, return_exceptions=True)
        outcome = job.future.result()
        self._job = None
        if self.config.once:
            self._once_finished = True
        # The claim this result answers: the server refuses it for any other (issue 11, finding 7).
        claim = job.claimed.claim
        msg = outcome.message(
            job.claimed.uuid,
            report_timings=self.config.report_timings,
            report_host_state=self.config.report_host_state,
        )
        msg, cut = _results.fit(protocol.with_claim(msg, claim), self.config.max_message)
        if cut or getattr(outcome, "truncated", False):
            limit = f"{self.config.max_message / (1 << 20):g} MiB"
            error = f"results exceed the {limit} message limit; outputs truncated"
            if outcome.event == "failed" and outcome.error:
                error = f"{outcome.error}; {error}"
            msg = protocol.with_claim(
                protocol.failed(
                    job.claimed.uuid,
                    msg["results"],
                    error,
                    timings=msg.get("timings"),
                    host_state=msg.get("host_state"),
                    iterations=msg.get("iterations"),
                    testbed=msg.get("testbed"),
                ),
                claim,
            )
            log.error("job %s: %s", job.claimed.uuid, error)
        log.info(
            "job %s: %s%s (pull %.3f s, prepare %.3f s)",
            job.claimed.uuid,
            msg["event"],
            f": {msg['error']}" if msg.get("error") else "",
            outcome.timings.get("pull", 0.0),
            outcome.timings.get("prepare", 0.0),
        )
        self._pending = _Pending(job.claimed.uuid, msg)
        # Replies to the last heartbeats may still be on their way: let them arrive first, so
        # the ack taken for the terminal message is really its own.
        await self._drain_replies(conn)

    async def _heartbeats(self, conn: Connection, job: _Job) -> None:
        while not job.future.done():
            try:
                await conn.send(protocol.with_claim(protocol.heartbeat(), job.claimed.claim))
            except ConnectionLost:
                return  # the reader notices too; the supervisor reconnects
            self._unanswered += 1
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _job_messages(self, conn: Connection, job: _Job) -> None:
        while True:
            msg = await conn.recv()
            assert msg is not None
            event = msg["event"]
            if event in ("ack", "cancel"):
                self._unanswered = max(0, self._unanswered - 1)
            if event == "cancel":
                self._cancel(job, "canceled by the server")
            elif event in ("job", "no_job", "update"):
                log.warning("job %s: ignoring an unexpected %s", job.claimed.uuid, event)

    async def _drain_replies(self, conn: Connection) -> None:
        deadline = time.monotonic() + ACK_DRAIN
        while self._unanswered > 0 and time.monotonic() < deadline:
            msg = await conn.recv(deadline - time.monotonic())
            if msg is None:
                break
            if msg["event"] in ("ack", "cancel"):
                self._unanswered -= 1
        self._unanswered = 0

    async def _deliver(self, conn: Connection) -> None:
        """Sends the pending terminal message and waits for its ack. No ack in time: the channel
        is dropped, and the message is resent first on the next one (at most max_resends)."""
        p = self._pending
        assert p is not None
        if p.sends > self.config.max_resends:
            self._drop_pending()
            return
        p.sends += 1
        if p.sends > 1:
            log.info(
                "job %s: resending %s (%d/%d)",
                p.job,
                p.message["event"],
                p.sends - 1,
                self.config.max_resends,
            )
        await conn.send(p.message)
        deadline = time.monotonic() + self.config.ack_timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = await conn.recv(left)
            if msg is not None and msg["event"] == "ack" and msg.get("job") == p.job:
                log.info("job %s: %s acknowledged", p.job, p.message["event"])
                self._pending = None
                return
        if p.sends > self.config.max_resends:
            self._drop_pending()
            return
        raise ConnectionLost(
            f"job {p.job}: no ack for {p.message['event']} within " f"{self.config.ack_timeout:g} s"
        )

    def _drop_pending(self) -> None:
        p = self._pending
        assert p is not None
        log.error(
            "job %s: %s not acknowledged after %d sends; dropping it",
            p.job,
            p.message["event"],
            p.sends,
        )
        self._pending = None
        self._lost_results += 1


def _set_result(future: "asyncio.Future[Outcome]", outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


async def run_agent_async(config: AgentConfig, *, handle_signals: bool = True) -> int:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    installed = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.request_stop, sig.name)
            installed.append(sig)
    try:
        return await agent.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
