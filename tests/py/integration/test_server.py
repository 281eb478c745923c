"""`benchrun serve` in-process on loopback (SQLite and PostgreSQL), driven by a fake runner over a
real WebSocket and by REST calls: every event path of the runner channel, its error paths, the
timeouts, restart, cancel, wakeup latency, SSE, OpenAPI, authentication and project isolation.
The real agent against this server is in test_jobs_e2e.py."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Optional

import aiohttp
import pytest

from benchrun.jobs import protocol as p
from benchrun.server.app import ROUTES, first_start, make_app, start_site
from benchrun.server.config import ServerConfig
from benchrun.server.db import open_database
from benchrun.server.registries import RegistryPolicy

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/bench/app@{DIGEST}"
HB = 1.5  # heartbeat timeout of these tests
GRACE = 1.0


def run(coro: Any, timeout: float = 60) -> Any:
    """Runs one async test body with a bound on its duration."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg_dsn")


class Harness:
    """A server on 127.0.0.1:<free port> over db_url with an admin token, a project, a user token
    scoped to it and a runner registered for it."""

    def __init__(self, db_url: str, **cfg: Any) -> None:
        self.db_url = db_url
        cfg = {"heartbeat_timeout": HB, "job_timeout_grace": GRACE, "sweep_interval": 0.3,
               "sse_keepalive": 0.5, "registries": RegistryPolicy.parse(["127.0.0.1:5000"]),
               **cfg}
        self.config = ServerConfig(db_url=db_url, **cfg)
        self.port = 0
        self.web: Optional[Any] = None

    async def __aenter__(self) -> "Harness":
        self.session = aiohttp.ClientSession()
        try:
            await self.start()
            self.admin = await self.db.create_token("admin", admin=True)
            self.project = (await self.api("POST", "/v0/projects", self.admin,
                                           {"name": "p1"}, 201))["id"]
            self.user = (await self.api("POST", "/v0/tokens", self.admin,
                                        {"name": "u", "projects": [self.project]}, 201))["token"]
            self.runner, self.key = await self.new_runner("r1", [self.project])
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.stop()
        finally:
            await self.session.close()

    async def start(self) -> None:
        self.db = open_database(self.db_url)
        await self.db.migrate()
        self.app = make_app(self.db, self.config)
        self.web, self.port = await start_site(self.app, "127.0.0.1", self.port,
                                               shutdown_timeout=2)
        self.url = f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.web is not None:
            web, self.web = self.web, None
            try:
                await web.cleanup()
            finally:
                await self.db.close()

    async def new_runner(self, name: str, projects: list[str]) -> tuple[str, str]:
        d = await self.api("POST", "/v0/runners", self.admin, {"name": name, "projects": projects},
                           201)
        return d["runner"]["name"], d["key"]

    async def api(self, method: str, path: str, token: Optional[str] = None,
                  body: Any = None, status: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.url + path, json=body,
                                        headers=headers) as r:
            doc = await r.json(content_type=None)
            assert r.status == status, (method, path, r.status, doc)
            return doc

    async def submit(self, project: Optional[str] = None, token: Optional[str] = None,
                     **config: Any) -> dict:
        config.setdefault("cmd", ["true"])
        return await self.api("POST", f"/v0/projects/{project or self.project}/jobs",
                              token or self.user, {"image": IMAGE, "config": config}, 201)

    async def job(self, job_id: str) -> dict:
        return await self.api("GET", f"/v0/jobs/{job_id}", self.user)

    async def wait_status(self, job_id: str, status: int, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["status"] == status:
                return job
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.05)

    async def channel(self, runner: Optional[str] = None,
                      key: Optional[str] = None) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            f"{self.url}/v0/runners/{runner or self.runner}/channel",
            headers={"Authorization": f"Bearer {key or self.key}"}, max_msg_size=64 << 20,
            autoclose=False)

    async def claim(self, ws: aiohttp.ClientWebSocketResponse, poll: int = 5, *,
                    submit: bool = False) -> dict:
        """ready -> the `job` message (submitting a job first if asked)."""
        if submit:
            await self.submit()
        await send(ws, p.ready(poll))
        msg = await recv(ws, poll + 5)
        assert msg["event"] == "job", msg
        p.parse_server_message(json.dumps(msg), 1 << 20)  # a valid upstream-shaped job message
        return msg


async def send(ws: aiohttp.ClientWebSocketResponse, msg: dict) -> None:
    await ws.send_str(json.dumps(msg))


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> tuple[int, str]:
    """Waits for the server's close frame; (code, reason)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.CLOSE:
            await ws.close()
            return int(msg.data), msg.extra or ""
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return int(ws.close_code or 0), ""
        assert msg.type == aiohttp.WSMsgType.TEXT


async def exchange(ws: aiohttp.ClientWebSocketResponse, msg: dict) -> dict:
    await send(ws, msg)
    return await recv(ws)


HOST_STATE = {"tuned": True, "differs": [], "cpus": [1], "journal": True,
              "noise": {"score": 0.01, "age_s": 60.0}}


# --- the happy paths ------------------------------------------------------------------------


def test_job_lifecycle_on_one_connection(db_url):
    async def body():
        async with Harness(db_url) as h:
            submitted = await h.submit(cmd=["echo", "hi"], timeout=60, iter=2)
            assert submitted["status"] == p.PENDING and submitted["config"]["digest"] == DIGEST
            assert submitted["config"]["registry"] == "http://127.0.0.1:5000"
            assert submitted["config"]["image"] == IMAGE
            ws = await h.channel()
            job = await h.claim(ws)
            assert job["uuid"] == submitted["id"] and job["timeout"] == 60
            assert job["config"]["cmd"] == ["echo", "hi"] and job["config"]["iter"] == 2
            assert job["config"]["project"] == h.project
            assert (await h.job(job["uuid"]))["status"] == p.CLAIMED
            assert await exchange(ws, p.running()) == p.ack(job["uuid"])
            assert (await h.job(job["uuid"]))["status"] == p.RUNNING
            assert await exchange(ws, p.heartbeat()) == p.ack(job["uuid"])
            results = [p.iteration_output(0, "hi\n", output={"/o": "x"}), p.iteration_output(0)]
            assert (await h.job(job["uuid"]))["host_state"] is None
            done = p.completed(job["uuid"], results, timings={"pull": 0.5, "prepare": 0.25},
                               host_state=HOST_STATE)
            assert await exchange(ws, done) == p.ack(job["uuid"])
            stored = await h.job(job["uuid"])
            assert stored["status"] == p.COMPLETED and stored["status_name"] == "completed"
            assert stored["timings"] == {"pull": 0.5, "prepare": 0.25}
            assert stored["host_state"] == HOST_STATE
            assert stored["started"] and stored["ended"] and stored["runner"]
            res = await h.api("GET", f"/v0/jobs/{job['uuid']}/results", h.user)
            assert res["results"] == results and res["host_state"] == HOST_STATE
            # Back to idle on the same connection: the next poll ends with no_job.
            await send(ws, p.ready(1))
            t0 = time.monotonic()
            assert await recv(ws, 5) == p.no_job()
            assert 0.8 < time.monotonic() - t0 < 3
            listed = await h.api("GET", f"/v0/projects/{h.project}/jobs?status=completed", h.user)
            assert [j["id"] for j in listed] == [job["uuid"]]
            await ws.close()
    run(body())


def test_failed_and_canceled_by_runner(db_url):
    async def body():
        async with Harness(db_url) as h:
            a, b = (await h.submit())["id"], (await h.submit())["id"]
            ws = await h.channel()
            job = await h.claim(ws)
            assert job["uuid"] == a  # oldest first at equal priority
            await exchange(ws, p.running())
            out = [p.iteration_output(3, stderr="boom")]
            assert await exchange(ws, p.failed(a, out, "exit 3")) == p.ack(a)
            fa = await h.job(a)
            assert fa["status"] == p.FAILED and fa["error"] == "exit 3" and fa["reason"] is None
            job = await h.claim(ws)
            assert job["uuid"] == b
            assert await exchange(ws, p.canceled(b)) == p.ack(b)  # canceled before running
            fb = await h.job(b)
            assert fb["status"] == p.CANCELED and fb["reason"] == "job_canceled_by_runner"
            await ws.close()
    run(body())


def test_priority_then_age(db_url):
    async def body():
        async with Harness(db_url) as h:
            low = (await h.submit())["id"]
            high = (await h.api("POST", f"/v0/projects/{h.project}/jobs", h.user,
                                {"image": IMAGE, "priority": 200}, 201))["id"]
            ws = await h.channel()
            assert (await h.claim(ws))["uuid"] == high
            await exchange(ws, p.canceled(high))
            assert (await h.claim(ws))["uuid"] == low
            await ws.close()
    run(body())


def test_idle_runner_is_woken_at_once(db_url):
    """The claim wait wakes on the submit itself (no 1 s polling): submit -> `job` latency."""
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            latencies = []
            for _ in range(5):
                await send(ws, p.ready(30))
                await asyncio.sleep(0.3)  # the server is now waiting for work
                t0 = time.monotonic()
                await h.submit()
                msg = await recv(ws, 10)
                latencies.append(time.monotonic() - t0)
                assert msg["event"] == "job"
                await exchange(ws, p.canceled(msg["uuid"]))
            latencies.sort()
            print(f"submit -> job latency: median {latencies[2] * 1000:.1f} ms, "
                  f"max {latencies[-1] * 1000:.1f} ms")
            assert latencies[2] < 0.2 and latencies[-1] < 0.5, latencies
            await ws.close()
    run(body())


# --- protocol errors ------------------------------------------------------------------------


def test_wrong_job_id_closes_the_channel(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            other = str(uuid.uuid4())
            await send(ws, p.completed(other, []))
            code, reason = await closed(ws)
            assert code == 1008 and "protocol error" in reason and other in reason, reason
            # The job's runner is gone: it fails after the heartbeat timeout.
            failed = await h.wait_status(job["uuid"], p.FAILED, timeout=HB + 5)
            assert failed["reason"] == "heartbeat_timeout"
    run(body())


def test_oversized_host_state_closes_the_channel(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            big = {**HOST_STATE, "x": "a" * p.MAX_HOST_STATE}
            await send(ws, p.completed(job["uuid"], [], host_state=big))
            code, reason = await closed(ws)
            assert code == 1008 and "completed.host_state" in reason, reason
            stored = await h.job(job["uuid"])
            assert stored["status"] == p.RUNNING and stored["host_state"] is None
    run(body())


def test_terminal_message_for_another_runners_job(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            name, key = await h.new_runner("r2", [h.project])
            ws2 = await h.channel(name, key)
            await send(ws2, p.completed(job["uuid"], []))  # while idle, not its job
            code, reason = await closed(ws2)
            assert code == 1008 and "not this runner's" in reason
            assert (await h.job(job["uuid"]))["status"] == p.CLAIMED
            await ws.close()
    run(body())


def test_invalid_frames_are_ignored_and_do_not_keep_the_job_alive(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await ws.send_str("{not json")
            await ws.send_bytes(b'{"event":"heartbeat"}')
            await ws.send_str('{"event":"bogus"}')
            await ws.send_str('{"event":"completed","job":"not-a-uuid","results":[]}')
            # Still open and answering:
            assert await exchange(ws, p.heartbeat()) == p.ack(job["uuid"])
            # Only junk from now on: the heartbeat timer runs out regardless.
            t0 = time.monotonic()
            try:
                for _ in range(40):
                    await ws.send_str("junk")
                    await ws.send_bytes(b"\x00")
                    await asyncio.sleep(0.1)
                    if time.monotonic() - t0 > HB + 2:
                        break
            except ConnectionResetError:
                pass  # the server closed it: the close frame is waiting to be read
            code, reason = await closed(ws, 5)
            assert code == 1000 and json.loads(reason) == "heartbeat_timeout"
            assert time.monotonic() - t0 < HB + 1.5
            failed = await h.job(job["uuid"])
            assert failed["status"] == p.FAILED and failed["reason"] == "heartbeat_timeout"
    run(body())


def test_oversized_message_closes_with_1009(db_url):
    async def body():
        async with Harness(db_url, max_message_bytes=64 << 10) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            big = p.completed(job["uuid"], [p.iteration_output(0, "x" * (80 << 10))])
            await send(ws, big)
            code, _ = await closed(ws)
            assert code == 1009
            assert (await h.job(job["uuid"]))["status"] == p.RUNNING  # nothing stored
            # Exactly at the limit is accepted.
            ws = await h.channel()
            msg = p.with_claim(p.completed(job["uuid"], [p.iteration_output(0, "")]), job["claim"])
            pad = (64 << 10) - len(p.dumps(msg)) - len(',"stdout":""')
            msg = p.with_claim(p.completed(job["uuid"], [p.iteration_output(0, "y" * pad)]),
                               job["claim"])
            assert len(p.dumps(msg).encode()) == 64 << 10
            await ws.send_str(p.dumps(msg))
            assert await recv(ws) == p.ack(job["uuid"])
            await ws.close()
    run(body())


def test_duplicate_terminal_messages_are_idempotent(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            jid = job["uuid"]
            await exchange(ws, p.running())
            first = [p.iteration_output(0, "first")]
            assert await exchange(ws, p.completed(jid, first)) == p.ack(jid)
            # Resent (the ack was lost): acknowledged again, nothing changes.
            assert await exchange(ws, p.completed(jid, [p.iteration_output(1)])) == p.ack(jid)
            assert await exchange(ws, p.failed(jid, [], "late")) == p.ack(jid)
            assert await exchange(ws, p.canceled(jid)) == p.ack(jid)
            stored = await h.api("GET", f"/v0/jobs/{jid}/results", h.user)
            assert stored["status"] == p.COMPLETED and stored["results"] == first
            await ws.close()
    run(body())


# --- reconnects, restarts, timeouts ---------------------------------------------------------


def test_terminal_message_while_idle_after_reconnect(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await ws.close()  # the connection drops mid-job
            ws = await h.channel()
            out = [p.iteration_output(0, "ok")]
            # A result resent on another connection must name the claim it answers.
            await send(ws, p.completed(job["uuid"], out))
            code, reason = await closed(ws)
            assert code == 1008 and "names no claim" in reason, reason
            ws = await h.channel()
            await send(ws, p.with_claim(p.completed(job["uuid"], out), str(uuid.uuid4())))
            code, reason = await closed(ws)
            assert code == 1008 and "not its current claim" in reason, reason
            assert (await h.job(job["uuid"]))["status"] == p.RUNNING
            ws = await h.channel()
            msg = p.with_claim(p.completed(job["uuid"], out), job["claim"])
            assert await exchange(ws, msg) == p.ack(job["uuid"])
            assert (await h.job(job["uuid"]))["status"] == p.COMPLETED
            await send(ws, p.ready(1))  # and the channel carries on
            assert await recv(ws) == p.no_job()
            await ws.close()
    run(body())


def test_reconnected_runner_resumes_with_heartbeats(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await ws.close()
            await asyncio.sleep(HB * 0.5)
            ws = await h.channel()
            for _ in range(int(HB * 2 / 0.3)):  # well past the disconnect timer
                assert await exchange(ws, p.heartbeat()) == p.ack(job["uuid"])
                await asyncio.sleep(0.3)
            assert (await h.job(job["uuid"]))["status"] == p.RUNNING
            assert await exchange(ws, p.completed(job["uuid"], [])) == p.ack(job["uuid"])
            assert (await h.job(job["uuid"]))["status"] == p.COMPLETED
            await ws.close()
    run(body())


def test_disconnect_mid_job_fails_after_heartbeat_timeout(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await ws.close()
            t0 = time.monotonic()
            failed = await h.wait_status(job["uuid"], p.FAILED, timeout=HB + 5)
            assert HB * 0.8 < time.monotonic() - t0 < HB + 2
            assert failed["reason"] == "heartbeat_timeout"
    run(body())


def test_heartbeat_timeout_then_late_completed_wins(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            code, reason = await closed(ws, HB + 3)  # silent runner
            assert code == 1000 and json.loads(reason) == "heartbeat_timeout"
            failed = await h.job(job["uuid"])
            assert failed["status"] == p.FAILED and failed["reason"] == "heartbeat_timeout"
            # The runner was alive after all: its result is the authority.
            ws = await h.channel()
            out = [p.iteration_output(0, "late")]
            msg = p.with_claim(p.completed(job["uuid"], out), job["claim"])
            assert await exchange(ws, msg) == p.ack(job["uuid"])
            done = await h.job(job["uuid"])
            assert done["status"] == p.COMPLETED and done["error"] is None
            assert done["reason"] == "completed_after_heartbeat_timeout"
            await ws.close()
    run(body())


def test_silent_idle_runner_is_disconnected(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            code, reason = await closed(ws, HB + 3)
            assert code == 1000 and json.loads(reason) == "heartbeat_timeout"
    run(body())


def test_hard_timeout_cancels(db_url):
    async def body():
        async with Harness(db_url) as h:
            await h.submit(timeout=1)
            ws = await h.channel()
            job = await h.claim(ws)
            t0 = time.monotonic()
            assert await exchange(ws, p.running()) == p.ack(job["uuid"])
            got = None
            while time.monotonic() - t0 < 1 + GRACE + 3:
                msg = await exchange(ws, p.heartbeat())
                if msg == p.cancel():
                    got = time.monotonic() - t0
                    break
                assert msg == p.ack(job["uuid"])
                await asyncio.sleep(0.2)
            assert got is not None and 1 + GRACE - 0.3 < got < 1 + GRACE + 1, got
            canceled = await h.job(job["uuid"])
            assert canceled["status"] == p.CANCELED and canceled["reason"] == "job_timeout_exceeded"
            # The channel's timer and the heartbeat reply may both have said cancel.
            await send(ws, p.canceled(job["uuid"]))
            msgs = [await recv(ws)]
            while msgs[-1] == p.cancel():
                msgs.append(await recv(ws))
            assert msgs[-1] == p.ack(job["uuid"]) and len(msgs) <= 2, msgs
            await ws.close()
    run(body())


def test_hard_timeout_without_heartbeats_to_trigger_it(db_url):
    """The channel's own timer cancels at timeout + grace even between heartbeats."""
    async def body():
        async with Harness(db_url, heartbeat_timeout=5.0) as h:
            await h.submit(timeout=1)
            ws = await h.channel()
            job = await h.claim(ws)
            await exchange(ws, p.running())
            t0 = time.monotonic()
            assert await recv(ws, 1 + GRACE + 2) == p.cancel()
            assert time.monotonic() - t0 < 1 + GRACE + 1
            assert (await h.job(job["uuid"]))["reason"] == "job_timeout_exceeded"
            await ws.close()
    run(body())


def test_server_restart_mid_job(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await h.stop()  # SIGTERM path: channels are closed with 1001, jobs are left alone
            code, reason = await closed(ws)
            assert code == 1001 and reason == "server shutting down"
            await h.start()  # a new process on the same database and port
            assert (await h.job(job["uuid"]))["status"] == p.RUNNING
            ws = await h.channel()
            out = [p.iteration_output(0, "survived")]
            msg = p.with_claim(p.completed(job["uuid"], out), job["claim"])
            assert await exchange(ws, msg) == p.ack(job["uuid"])
            res = await h.api("GET", f"/v0/jobs/{job['uuid']}/results", h.user)
            assert res["status"] == p.COMPLETED and res["results"] == out
            await ws.close()
    run(body())


def test_startup_recovery_fails_orphaned_jobs(db_url):
    async def body():
        async with Harness(db_url) as h:
            ws = await h.channel()
            job = await h.claim(ws, submit=True)
            await exchange(ws, p.running())
            await h.stop()
            await ws.close()
            await asyncio.sleep(HB + 0.2)  # the runner never comes back
            await h.start()
            failed = await h.wait_status(job["uuid"], p.FAILED, timeout=3)
            assert failed["reason"] == "heartbeat_timeout"
    run(body())


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_pending_claimed_and_running(db_url):
    async def body():
        async with Harness(db_url) as h:
            pending = (await h.submit())["id"]
            c = await h.api("POST", f"/v0/jobs/{pending}/cancel", h.user)
            assert c["status"] == p.CANCELED and c["reason"] == "canceled_by_user"
            again = await h.api("POST", f"/v0/jobs/{pending}/cancel", h.user)
            assert again["status"] == p.CANCELED  # idempotent

            ws = await h.channel()
            claimed = (await h.submit())["id"]
            assert (await h.claim(ws))["uuid"] == claimed
            await h.api("POST", f"/v0/jobs/{claimed}/cancel", h.user)
            assert await recv(ws, 2) == p.cancel()  # at once, not on the next heartbeat
            assert await exchange(ws, p.running()) == p.cancel()  # too late to start
            assert await exchange(ws, p.canceled(claimed)) == p.ack(claimed)

            running = (await h.submit())["id"]
            assert (await h.claim(ws))["uuid"] == running
            await exchange(ws, p.running())
            t0 = time.monotonic()
            await h.api("POST", f"/v0/jobs/{running}/cancel", h.user)
            assert await recv(ws, 2) == p.cancel()
            assert time.monotonic() - t0 < 1
            assert await exchange(ws, p.heartbeat()) == p.cancel()
            assert await exchange(ws, p.canceled(running)) == p.ack(running)
            assert (await h.job(running))["status"] == p.CANCELED

            done = (await h.submit())["id"]
            assert (await h.claim(ws))["uuid"] == done
            await exchange(ws, p.completed(done, []))
            err = await h.api("POST", f"/v0/jobs/{done}/cancel", h.user, status=409)
            assert "completed" in err["error"]
            await ws.close()
    run(body())


# --- SSE, OpenAPI, auth, isolation ---------------------------------------------------------


def test_sse_streams_status_changes(db_url):
    async def body():
        async with Harness(db_url) as h:
            other = (await h.api("POST", "/v0/projects", h.admin, {"name": "other"}, 201))["id"]
            events: list[dict] = []
            comments = 0
            got_all = asyncio.Event()
            ready = asyncio.Event()

            async def listen() -> None:
                nonlocal comments
                async with h.session.get(f"{h.url}/v0/events",
                                         headers={"Authorization": f"Bearer {h.user}"}) as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/event-stream")
                    ready.set()
                    async for line in r.content:
                        text = line.decode().rstrip("\n")
                        if text.startswith(":"):
                            comments += 1
                        elif text.startswith("data: "):
                            events.append(json.loads(text[6:]))
                            if any(e["status"] == p.COMPLETED for e in events) and comments > 1:
                                got_all.set()
                                return

            task = asyncio.create_task(listen())
            try:
                await asyncio.wait_for(ready.wait(), 5)
                await h.submit(project=other, token=h.admin)  # not visible to h.user
                ws = await h.channel()
                job = await h.claim(ws, submit=True)
                await exchange(ws, p.running())
                await exchange(ws, p.heartbeat())
                await asyncio.sleep(0.7)  # at least one keep-alive comment
                await exchange(ws, p.completed(job["uuid"], []))
                await asyncio.wait_for(got_all.wait(), 5)
                await ws.close()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert {e["project"] for e in events} == {h.project}
            statuses = [e["status"] for e in events if e["kind"] == "job"]
            assert statuses == [p.CLAIMED, p.RUNNING, p.COMPLETED], events
            assert any(e["kind"] == "submitted" and e["status"] == p.PENDING for e in events)
            assert any(e["kind"] == "heartbeat" for e in events)
            # The server noticed the client going away.
            for _ in range(50):
                if not h.app["benchrun.state"].hub._subs:
                    break
                await asyncio.sleep(0.05)
            assert not h.app["benchrun.state"].hub._subs
            await h.api("GET", f"/v0/events?project={other}", h.user, status=404)
    run(body())


def test_openapi_lists_every_route(tmp_path):
    async def body():
        async with Harness(f"sqlite:///{tmp_path / 'jobs.db'}") as h:
            doc = await h.api("GET", "/v0/openapi.json")
            assert doc["openapi"].startswith("3.0")
            served = {(r.method, r.resource.canonical) for r in h.app.router.routes()
                      if r.method != "HEAD"}
            documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
            assert served == documented
            assert len(served) == len(ROUTES) >= 15
            for path, ops in doc["paths"].items():
                for op in ops.values():
                    for ref in json.dumps(op).split('"$ref": "')[1:]:
                        name = ref.split('"')[0].rsplit("/", 1)[-1]
                        assert name in doc["components"]["schemas"], (path, name)
    run(body())


def test_authentication_failures(tmp_path):
    async def body():
        async with Harness(f"sqlite:///{tmp_path / 'jobs.db'}") as h:
            err = await h.api("GET", "/v0/projects", None, status=401)
            assert "Authorization" in err["error"]
            await h.api("GET", "/v0/projects", "benchrun_user_" + "x" * 32, status=401)
            await h.api("GET", "/v0/projects", h.key, status=401)  # a runner key is no API token
            await h.api("POST", "/v0/projects", h.user, {"name": "x"}, status=403)
            await h.api("POST", "/v0/runners", h.user, {"name": "x", "projects": []}, status=403)
            await h.api("GET", "/v0/events", None, status=401)
            name2, key2 = await h.new_runner("r2", [h.project])
            for runner, key in ((h.runner, "bencher_runner_" + "x" * 30), (h.runner, key2),
                                (h.runner, h.user), ("nobody", h.key)):
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await h.channel(runner, key)
                assert e.value.status == 401
            # Rotation: the old key stops working at once.
            rotated = await h.api("POST", f"/v0/runners/{name2}/key", h.admin)
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await h.channel(name2, key2)
            ws = await h.channel(name2, rotated["key"])
            await ws.close()
            await h.api("POST", "/v0/runners/nobody/key", h.admin, status=404)
            await h.api("GET", "/v0/nowhere", h.user, status=404)
    run(body())


def test_project_isolation(db_url):
    async def body():
        async with Harness(db_url) as h:
            other = (await h.api("POST", "/v0/projects", h.admin, {"name": "b"}, 201))["id"]
            stranger = (await h.api("POST", "/v0/tokens", h.admin,
                                    {"name": "s", "projects": [other]}, 201))["token"]
            mine = (await h.submit())["id"]
            for method, path in (("GET", f"/v0/jobs/{mine}"), ("GET", f"/v0/jobs/{mine}/results"),
                                 ("POST", f"/v0/jobs/{mine}/cancel"),
                                 ("GET", f"/v0/projects/{h.project}/jobs"),
                                 ("GET", f"/v0/jobs/{uuid.uuid4()}"), ("GET", "/v0/jobs/nope")):
                err = await h.api(method, path, stranger, status=404)
                assert "not found" in err["error"]
            await h.api("POST", f"/v0/projects/{h.project}/jobs", stranger, {"image": IMAGE},
                        status=404)
            assert (await h.job(mine))["status"] == p.PENDING
            assert await h.api("GET", "/v0/jobs", stranger) == []
            assert [pr["id"] for pr in await h.api("GET", "/v0/projects", stranger)] == [other]
            # A runner of the other project never claims this project's job.
            name, key = await h.new_runner("rb", [other])
            ws = await h.channel(name, key)
            await send(ws, p.ready(1))
            assert await recv(ws) == p.no_job()
            await ws.close()
    run(body())


def test_submit_validation(tmp_path):
    async def body():
        async with Harness(f"sqlite:///{tmp_path / 'jobs.db'}") as h:
            path = f"/v0/projects/{h.project}/jobs"
            for bad in ({"image": IMAGE, "config": {"cmd": "not a list"}},
                        {"image": IMAGE, "config": {"bogus": 1}},
                        {"image": IMAGE, "config": {"iter": "auto"}},  # no detect
                        {"image": IMAGE, "config": {"iter": 3, "detect": 0.02}},
                        {"image": IMAGE, "config": {"file_paths": ["relative"]}},
                        {"image": IMAGE, "spec": {"cpu": 0}},
                        {"image": IMAGE, "priority": "high"},
                        {"image": "oci:/tmp/layout"},
                        {"config": {}},
                        {"image": IMAGE, "extra": True}):
                err = await h.api("POST", path, h.user, bad, status=400)
                assert err["error"], bad
            async with h.session.post(h.url + path, data=b"{",
                                      headers={"Authorization": f"Bearer {h.user}"}) as r:
                assert r.status == 400 and "invalid JSON" in (await r.json())["error"]
            job = await h.api("POST", path, h.user, {
                "image": f"docker://127.0.0.1:5000/bench/app:v1@{DIGEST}",
                "spec": {"cpu": 2, "memory": 1 << 30, "sandbox": "vm"},
                "config": {"env": {"A": "1"}, "file_paths": ["/out"], "allow_failure": True}}, 201)
            assert job["config"]["image"] == IMAGE  # the tag is dropped once pinned
            assert job["spec"]["cpu"] == 2 and job["spec"]["sandbox"] == "vm"
            assert job["timeout"] == h.config.default_job_timeout
            job = await h.api("POST", path, h.user, {
                "image": IMAGE, "config": {"iter": "auto", "detect": 0.02}}, 201)
            assert job["config"]["iter"] == "auto" and job["config"]["detect"] == 0.02
    run(body())


def test_first_start_writes_the_admin_token(tmp_path):
    async def body():
        db = open_database(f"sqlite:///{tmp_path / 'jobs.db'}")
        await db.migrate()
        try:
            f = tmp_path / "admin-token"
            token = await first_start(db, str(f))
            assert token and f.read_text().strip() == token
            assert f.stat().st_mode & 0o777 == 0o600
            assert (await db.auth_token(token)).admin
            assert await first_start(db, str(f)) is None  # only on the first start
        finally:
            await db.close()
    run(body())


def test_serve_process_sigterm(tmp_path):
    """The real process: first start writes the token, SIGTERM closes channels with 1001 and
    exits 0."""
    token_file = tmp_path / "admin-token"
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    code = ("import sys; from benchrun.server.config import ServerConfig; "
            "from benchrun.server.app import run_server; "
            f"sys.exit(run_server(ServerConfig.from_options(db='sqlite:///{tmp_path}/j.db', "
            f"listen='127.0.0.1:{port}', admin_token_file='{token_file}', max_message='1m')))")
    # The benchrun this interpreter imports (the installed package, with its native module).
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        async def body():
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                for _ in range(200):
                    try:
                        async with s.get(url + "/v0/openapi.json") as r:
                            if r.status == 200 and token_file.exists():
                                break
                    except aiohttp.ClientError:
                        pass
                    assert proc.poll() is None
                    await asyncio.sleep(0.05)
                admin = token_file.read_text().strip()
                hdr = {"Authorization": f"Bearer {admin}"}
                async with s.post(url + "/v0/projects", json={"name": "p"}, headers=hdr) as r:
                    pid = (await r.json())["id"]
                async with s.post(url + "/v0/runners", json={"name": "r", "projects": [pid]},
                                  headers=hdr) as r:
                    key = (await r.json())["key"]
                ws = await s.ws_connect(url + "/v0/runners/r/channel",
                                        headers={"Authorization": f"Bearer {key}"})
                proc.send_signal(signal.SIGTERM)
                code, reason = await closed(ws)
                assert (code, reason) == (1001, "server shutting down")
        run(body(), 30)
        assert proc.wait(timeout=15) == 0
        log = proc.stderr.read().decode()
        assert "listening on http://127.0.0.1" in log and "shutting down" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
