"""Red team against the job server (issue 11, findings 7, 8 and the JSON parts of 10), written as
the attacker acts: a runner whose key leaked and was rotated (or whose runner was deleted), a
tenant with a project token who submits images naming internal hosts, and a runner or tenant
sending hostile JSON. Each test reproduces the finding on the old code and fails there."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import uuid
from typing import Any, Optional

import aiohttp
import pytest

from benchrun.jobs import protocol as p
from benchrun.server.app import make_app, start_site
from benchrun.server.config import ServerConfig
from benchrun.server.db import open_database
from benchrun.server.db.keys import secret_hash
from support.jobs import JobServer
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
from support.registry import free_port

DIGEST = "sha256:" + "ab" * 32
ALLOWED = "127.0.0.1:5000"  # allowed in these servers; nothing listens there


def run(coro: Any, timeout: float = 90) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg_dsn")


class Server:
    """One in-process `benchrun serve` with an admin token, a project, a tenant token for it and
    a runner (key self.key)."""

    def __init__(self, db_url: str, *, admin: Optional[str] = None, **cfg: Any) -> None:
        self.config = ServerConfig.from_options(
            db=db_url, listen="127.0.0.1:0", heartbeat_timeout=60, grace=60,
            allow_registries=cfg.pop("allow_registries", (ALLOWED,)), **cfg)
        self.db_url = db_url
        self.admin = admin

    async def __aenter__(self) -> "Server":
        self.session = aiohttp.ClientSession()
        self.db = open_database(self.db_url)
        await self.db.migrate()
        self.web, port = await start_site(make_app(self.db, self.config), "127.0.0.1", 0,
                                          shutdown_timeout=2)
        self.url = f"http://127.0.0.1:{port}"
        if self.admin is None:
            self.admin = await self.db.create_token("admin", admin=True)
            self.project = (await self.api("POST", "/v0/projects", self.admin,
                                           {"name": f"p-{uuid.uuid4().hex[:6]}"}, 201))["id"]
            self.tenant = (await self.api("POST", "/v0/tokens", self.admin,
                                          {"name": "t", "projects": [self.project]}, 201))["token"]
            d = await self.api("POST", "/v0/runners", self.admin,
                               {"name": "r1", "projects": [self.project]}, 201)
            self.runner, self.runner_id, self.key = d["runner"]["name"], d["runner"]["id"], d["key"]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.web.cleanup()
        finally:
            await self.db.close()
            await self.session.close()

    async def api(self, method: str, path: str, token: Optional[str], body: Any = None,
                  status: Optional[int] = 200, raw: Optional[bytes] = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kw = {"data": raw, "headers": {**headers, "Content-Type": "application/json"}} \
            if raw is not None else {"json": body, "headers": headers}
        async with self.session.request(method, self.url + path, **kw) as r:
            text = await r.text()
            assert status is None or r.status == status, (method, path, r.status, text)
            return json.loads(text) if status is not None else (r.status, text)

    async def submit(self, image: str = f"{ALLOWED}/bench/app@{DIGEST}", **config: Any) -> dict:
        return await self.api("POST", f"/v0/projects/{self.project}/jobs", self.tenant,
                              {"image": image, "config": {"cmd": ["true"], **config}}, 201)

    async def channel(self, key: str, runner: str = "r1") -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            f"{self.url}/v0/runners/{runner}/channel",
            headers={"Authorization": f"Bearer {key}"}, autoclose=False)


async def send(ws: aiohttp.ClientWebSocketResponse, msg: Any) -> None:
    await ws.send_str(msg if isinstance(msg, str) else json.dumps(msg))


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> tuple[int, str]:
    """Reads until the server closes the channel: (code, reason). Fails if it stays open."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.CLOSE:
            await ws.close()
            return int(msg.data), msg.extra or ""
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return int(ws.close_code or 0), ""


async def refused(s: Server, key: str) -> bool:
    try:
        ws = await s.channel(key)
    except aiohttp.WSServerHandshakeError as e:
        return e.status == 401
    await ws.close()
    return False


# --- finding 7: a rotated key or deleted runner keeps its live channel ----------------------


@pytest.mark.parametrize("revoke", ["rotate", "delete"])
def test_finding7_revoked_runner_channel_is_cut(db_url, revoke):
    """The attacker holds a runner key and keeps a channel open. The operator rotates the key
    (or deletes the runner): the channel closes at once, the old key can neither reconnect, claim
    nor post results, and (rotation) the runner with the new key works."""
    async def body():
        async with Server(db_url) as s:
            job = await s.submit(env={"SECRET": "s3cr3t"})
            stolen = await s.channel(s.key)
            await send(stolen, p.ready(5))
            claimed = await recv(stolen)
            assert claimed["uuid"] == job["id"]
            await send(stolen, p.running())
            assert (await recv(stolen))["event"] == "ack"
            if revoke == "rotate":
                new_key = (await s.api("POST", "/v0/runners/r1/key", s.admin))["key"]
            else:
                await s.api("DELETE", "/v0/runners/r1", s.admin)
            code, reason = await closed(stolen)  # unprompted: the attacker sends nothing
            assert code == 1008 and "runner_key_revoked" in reason, (code, reason)
            assert await refused(s, s.key)
            # The claim the attacker held cannot be answered with the old key at all, not even
            # by a statement racing the rotation (the key is part of the UPDATE).
            changed, _ = await s.db.transition(
                job["id"], p.COMPLETED, from_=(p.CLAIMED, p.RUNNING), runner=s.runner_id,
                claim=claimed["claim"], key_hash=secret_hash(s.key), at=time.time(),
                results=[{"exit_code": 0, "stdout": "forged"}])
            assert not changed
            assert (await s.api("GET", f"/v0/jobs/{job['id']}", s.tenant))["status"] == p.RUNNING
            if revoke == "rotate":
                ws = await s.channel(new_key)
                done = p.with_claim(p.completed(job["id"], [p.iteration_output(0, "real")]),
                                    claimed["claim"])
                await send(ws, done)
                assert await recv(ws) == p.ack(job["id"])
                second = await s.submit()
                await send(ws, p.ready(5))
                assert (await recv(ws))["uuid"] == second["id"]
                await ws.close()
                res = await s.api("GET", f"/v0/jobs/{job['id']}/results", s.tenant)
                assert res["results"] == [{"exit_code": 0, "stdout": "real"}]
    run(body())


def test_finding7_rotation_on_another_server_process_closes_the_channel(pg_dsn, tmp_path):
    """Two server processes on one PostgreSQL database: the attacker's channel is on server B, the
    operator rotates the key through server A. B closes the channel without waiting for its
    sweeper (set to a minute here): the revocation reaches it by NOTIFY."""
    a = JobServer(tmp_path / "a", pg_dsn, allow_registries=(ALLOWED,))
    try:
        async def body():
            async with Server(pg_dsn, admin=a.admin_token, sweep_interval=60.0) as b:
                project = (await b.api("POST", "/v0/projects", b.admin, {"name": "x"}, 201))["id"]
                d = await b.api("POST", "/v0/runners", b.admin,
                                {"name": "r9", "projects": [project]}, 201)
                old = d["key"]
                stolen = await b.channel(old, "r9")
                await send(stolen, p.ready(30))  # a long poll, waiting for a job to steal
                t0 = time.monotonic()
                async with b.session.post(f"{a.url}/v0/runners/r9/key", headers={
                        "Authorization": f"Bearer {a.admin_token}"}) as r:
                    assert r.status == 200
                    new = (await r.json())["key"]
                code, reason = await closed(stolen, 20)
                assert code == 1008 and "runner_key_revoked" in reason, (code, reason)
                assert time.monotonic() - t0 < 20
                # A job submitted now goes to the new key's channel, not the old one.
                async with b.session.post(
                        f"{a.url}/v0/projects/{project}/jobs",
                        headers={"Authorization": f"Bearer {a.admin_token}"},
                        json={"image": f"{ALLOWED}/x@{DIGEST}"}) as r:
                    assert r.status == 201
                    jid = (await r.json())["id"]
                try:
                    await b.channel(old, "r9")
                    raise AssertionError("the old key still connects")
                except aiohttp.WSServerHandshakeError as e:
                    assert e.status == 401
                ws = await b.channel(new, "r9")
                await send(ws, p.ready(5))
                assert (await recv(ws))["uuid"] == jid
                await ws.close()
        run(body())
    finally:
        a.stop()


# --- finding 8: the submitter makes the server request any host:port -----------------------


class CountingServer:
    """A throwaway HTTP server on loopback that counts requests and answers 500 with a body an
    attacker would like to read."""

    BODY = b"internal-service SECRET-BANNER v1.2"

    def __init__(self) -> None:
        self.count = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.count += 1
                self.send_response(500, "Internal Banner")
                self.send_header("Content-Length", str(len(outer.BODY)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(outer.BODY)

            do_GET = do_HEAD = do_POST = _any

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def internal_service():
    srv = CountingServer()
    yield srv
    srv.stop()


def test_finding8_submission_cannot_reach_unlisted_hosts(tmp_path, internal_service):
    """A tenant submits images naming an internal service on the server's loopback, by tag and by
    digest: refused before any request is sent (the service counts none)."""
    async def body():
        async with Server(f"sqlite:///{tmp_path / 'j.db'}") as s:
            path = f"/v0/projects/{s.project}/jobs"
            for image in (f"{internal_service.host}/probe:latest",
                          f"{internal_service.host}/probe@{DIGEST}",
                          f"docker://{internal_service.host}/a/b:1",
                          "169.254.169.254/latest/meta-data:x"):
                err = await s.api("POST", path, s.tenant, {"image": image}, 400)
                assert "not allowed" in err["error"], err
                assert "SECRET" not in err["error"] and "500" not in err["error"]
            assert internal_service.count == 0
    run(body())


def test_finding8_errors_from_an_allowed_registry_are_generic(tmp_path, internal_service):
    """Even a registry the operator allowed does not get its status line or body relayed to the
    submitter; nor does a network failure's text."""
    dead = f"127.0.0.1:{free_port()}"
    async def body():
        async with Server(f"sqlite:///{tmp_path / 'j.db'}",
                          allow_registries=(internal_service.host, dead)) as s:
            path = f"/v0/projects/{s.project}/jobs"
            err = await s.api("POST", path, s.tenant, {"image": f"{internal_service.host}/a:1"},
                              422)
            assert internal_service.count > 0  # allowed: it was asked
            assert "SECRET" not in err["error"] and "Banner" not in err["error"], err
            assert "500" not in err["error"] and "could not resolve" in err["error"], err
            err = await s.api("POST", path, s.tenant, {"image": f"{dead}/a:1"}, 422)
            assert "could not resolve" in err["error"], err
            assert "refused" not in err["error"].lower() and "errno" not in err["error"].lower()
    run(body())


@pytest.mark.registry
def test_finding8_allowed_registry_works(tmp_path, registry):
    info = write_layout(tmp_path / "layout", [busybox_layer(), Layer("gzip")],
                        config={"Env": ["PATH=/bin"]})
    skopeo_push(info, f"{registry.host}/sec/ok:1")

    async def body():
        async with Server(f"sqlite:///{tmp_path / 'j.db'}",
                          allow_registries=(registry.host,)) as s:
            job = await s.submit(f"{registry.host}/sec/ok:1")
            assert job["config"]["digest"] == info.manifest_digest
            assert job["config"]["registry"] == f"http://{registry.host}"
            # The list is per project: another project does not get it by default.
            other = (await s.api("POST", "/v0/projects", s.admin, {"name": "o"}, 201))["id"]
            err = await s.api("POST", f"/v0/projects/{other}/jobs", s.admin,
                              {"image": "busybox:latest"}, 400)
            assert "not allowed" in err["error"]
    run(body())


# --- finding 10: hostile JSON on the channel and REST -----------------------------------------


def test_finding10_deep_json_is_a_protocol_error(tmp_path):
    deep = '{"event":"heartbeat","x":' + "[" * 100_000 + "]" * 100_000 + "}"

    async def body():
        async with Server(f"sqlite:///{tmp_path / 'j.db'}") as s:
            ws = await s.channel(s.key)
            await send(ws, deep)
            code, reason = await closed(ws)
            assert code == 1008 and "nested deeper than 64" in reason, (code, reason)
            status, text = await s.api("POST", f"/v0/projects/{s.project}/jobs", s.tenant,
                                       raw=('{"image":' + "[" * 100_000 + "]" * 100_000 + "}")
                                       .encode(), status=None)
            assert status == 400 and "nested deeper than 64" in text, (status, text)
            # 64 levels are fine (a spec field passed through to runners).
            nested = {"name": json.loads("[" * 62 + "]" * 62)}
            await s.api("POST", f"/v0/projects/{s.project}/jobs", s.tenant,
                        {"image": f"{ALLOWED}/a@{DIGEST}", "spec": nested}, 201)
    run(body())


@pytest.mark.parametrize("number", ["1" + "0" * 400, "1e400", "NaN", "-Infinity"])
def test_finding10_numbers_out_of_range_are_refused(tmp_path, number):
    """A runner reports timings that cannot be stored (10^400) or are not JSON (NaN): the channel
    closes with a protocol error naming it and nothing is stored; a tenant's job body with the
    same is 400; everything served is standard JSON."""
    async def body():
        async with Server(f"sqlite:///{tmp_path / 'j.db'}") as s:
            job = await s.submit()
            ws = await s.channel(s.key)
            await send(ws, p.ready(5))
            claimed = await recv(ws)
            await send(ws, p.running())
            await recv(ws)
            frame = ('{"event":"completed","job":"%s","results":[{"exit_code":0}],'
                     '"timings":{"pull":%s}}' % (job["id"], number))
            await send(ws, frame)
            code, reason = await closed(ws)
            assert code == 1008 and "protocol error" in reason, (code, reason)
            # The result was refused, not half-stored: the runner may resend a valid one.
            ws = await s.channel(s.key)
            ok = p.with_claim(p.completed(job["id"], [p.iteration_output(0)],
                                          timings={"pull": 0.5}), claimed["claim"])
            await send(ws, ok)
            assert await recv(ws) == p.ack(job["id"])
            await ws.close()
            status, text = await s.api("GET", f"/v0/jobs/{job['id']}", s.tenant, status=None)
            json.loads(text, parse_constant=lambda c: pytest.fail(f"served {c}"))
            status, text = await s.api(
                "POST", f"/v0/projects/{s.project}/jobs", s.tenant, status=None,
                raw=('{"image":"%s/a@%s","spec":{"name":%s}}' % (ALLOWED, DIGEST, number))
                .encode())
            assert status == 400, (status, text)
    run(body())
