"""History, alerts and confirm-before-alert through the real server in-process (SQLite and
PostgreSQL), driven over REST and by a fake runner on a real WebSocket (the agent's side is in
test_history_e2e.py): jobs feed series, a threshold crossing queues an ABBA confirmation pinned to
the runner, a reproduced change opens the alert, an unreproduced one marks the point as noise;
project isolation; hostile uploads."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Optional

import aiohttp
import pytest

from benchrun.jobs import protocol as p
from benchrun.server.app import make_app, start_site
from benchrun.server.config import ServerConfig
from benchrun.server.db import open_database
from benchrun.server.registries import RegistryPolicy

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/bench/app@{DIGEST}"
TESTBED = {"cpu_model": "Test CPU", "microcode": "0x1", "kernel": "6.1", "arch": "x86_64",
           "cpu_count": 2, "smt": "off", "turbo": "unknown", "governor": "unknown",
           "tuned": False, "backend": "sandbox", "noise_score": 0.01}


def run(coro: Any, timeout: float = 90) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg_dsn")


class Server:
    """The server on a free loopback port with an admin token, projects a and b, a user token per
    project and a runner r1 for project a."""

    def __init__(self, db_url: str) -> None:
        self.config = ServerConfig(db_url=db_url, heartbeat_timeout=30, sse_keepalive=0.5,
                                   registries=RegistryPolicy.parse(["127.0.0.1:5000"]))

    async def __aenter__(self) -> "Server":
        self.session = aiohttp.ClientSession()
        self.db = open_database(self.config.db_url)
        await self.db.migrate()
        self.web, port = await start_site(make_app(self.db, self.config), "127.0.0.1", 0,
                                          shutdown_timeout=2)
        self.url = f"http://127.0.0.1:{port}"
        admin = await self.db.create_token("admin", admin=True)
        self.a = (await self.api("POST", "/v0/projects", admin, {"name": "a"}, 201))["id"]
        self.b = (await self.api("POST", "/v0/projects", admin, {"name": "b"}, 201))["id"]
        self.ua = (await self.api("POST", "/v0/tokens", admin, {"name": "ua", "projects": [self.a]},
                                  201))["token"]
        self.ub = (await self.api("POST", "/v0/tokens", admin, {"name": "ub", "projects": [self.b]},
                                  201))["token"]
        d = await self.api("POST", "/v0/runners", admin, {"name": "r1", "projects": [self.a]}, 201)
        self.runner_id, self.key = d["runner"]["id"], d["key"]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.web.cleanup()
        finally:
            await self.db.close()
            await self.session.close()

    async def api(self, method: str, path: str, token: str, body: Any = None,
                  status: int = 200) -> Any:
        async with self.session.request(method, self.url + path, json=body,
                                        headers={"Authorization": f"Bearer {token}"}) as r:
            text = await r.text()
            assert r.status == status, (method, path, r.status, text[:500])
            return json.loads(text) if r.content_type == "application/json" else text

    async def submit(self, commit: str) -> dict:
        return await self.api("POST", f"/v0/projects/{self.a}/jobs", self.ua, {
            "image": IMAGE, "config": {"cmd": ["true"], "iter": 3},
            "spec": {"history": {"branch": "main", "commit": commit, "benchmark": "loop"}}}, 201)

    async def channel(self) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            f"{self.url}/v0/runners/r1/channel", headers={"Authorization": f"Bearer {self.key}"})

    async def until(self, what: str, fn: Any, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = await fn()
            if got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def execute(ws: aiohttp.ClientWebSocketResponse, walls: Any) -> dict:
    """Claims the next job and completes it with one iteration per wall time; walls may be a
    function of the job message (a confirmation side)."""
    await ws.send_str(json.dumps(p.ready(5)))
    job = await recv(ws)
    assert job["event"] == "job", job
    values = walls(job) if callable(walls) else walls
    await ws.send_str(json.dumps(p.with_claim(p.running(), job.get("claim"))))
    assert (await recv(ws))["event"] == "ack"
    its = [{"metrics": {"wall_time": {"value": v, "unit": "s"},
                        "peak_memory": {"value": 1e6, "unit": "bytes"}},
            "start": 1e9 + i, "end": 1e9 + i + v} for i, v in enumerate(values)]
    done = p.completed(job["uuid"], [p.iteration_output(0) for _ in values],
                       iterations=its, testbed=TESTBED)
    await ws.send_str(json.dumps(p.with_claim(done, job.get("claim"))))
    assert (await recv(ws))["event"] == "ack"
    return job


FAST = [1.00, 1.02, 0.99]
SLOW = [2.00, 2.03, 1.98]


def test_threshold_confirmation_opens_or_marks_noise(db_url):
    async def body():
        async with Server(db_url) as s:
            P = f"/v0/projects/{s.a}"
            cfg = await s.api("PUT", f"{P}/history/alert-configs", s.ua, {
                "branch": "main", "measure": "wall_time", "model": "percentage",
                "params": {"upper": 0.3}, "repetitions": 3}, 201)
            assert cfg["model"] == "percentage" and cfg["benchmark"] is None
            ws = await s.channel()
            for i in range(4):
                await s.submit(f"c{i}")
                await execute(ws, FAST)
            series = await s.until("4 points", lambda: _series_with(s, 4))
            # The per-iteration metrics are stored and served per job.
            jobs = await s.api("GET", f"{P}/jobs", s.ua)
            res = await s.api("GET", f"/v0/jobs/{jobs[0]['id']}/results", s.ua)
            assert [it["metrics"]["wall_time"]["value"] for it in res["iterations"]] == FAST
            assert res["testbed"]["cpu_model"] == "Test CPU"

            # A real 2x slowdown: the alert waits for its confirmation (ABBA on r1, 3 a side).
            await s.submit("c4")
            await execute(ws, SLOW)
            alert = (await s.until("an alert", lambda: _alerts(s)))[0]
            assert alert["state"] == "confirming" and alert["kind"] == "threshold:percentage"
            assert (alert["base_revision"], alert["head_revision"]) == ("c3", "c4")
            conf = (await s.until("queued confirmation",
                                  lambda: _confirmation(s, alert["id"])))
            assert conf["order"] == "ABBAAB" and conf["repetitions"] == 3
            assert conf["runner"] == s.runner_id
            sides = []
            for _ in range(6):
                job = await execute(ws, lambda j: FAST if j["spec"]["confirmation"]["side"]
                                    == "base" else SLOW)
                sides.append(job["spec"]["confirmation"]["side"])
                assert "history" not in job["spec"]  # re-runs are not history points
            assert sides == ["base", "head", "head", "base", "base", "head"]
            alert = await s.until("decided", lambda: _decided(s, alert["id"]))
            assert alert["state"] == "open", alert
            cmp_ = alert["confirmation"]["comparison"]
            assert cmp_["verdict"] == "slower" and cmp_["change"] > 0.5, cmp_
            assert len(alert["confirmation"]["head"]) == 9
            assert {j["id"] for j in alert["confirmation"]["jobs"]} <= {
                j["id"] for j in await s.api("GET", f"{P}/jobs", s.ua)}

            # A one-off outlier (3x of the new level) that the re-run does not reproduce: noise.
            await s.submit("c5")
            await execute(ws, [6.0, 6.1, 5.9])
            noise = await s.until("second alert", lambda: _alerts(s, 2))
            noise = [a for a in noise if a["head_revision"] == "c5"][0]
            for _ in range(6):
                await execute(ws, SLOW)  # both sides measure the same
            noise = await s.until("decided", lambda: _decided(s, noise["id"]))
            assert noise["state"] == "noise", noise
            table = await s.api("GET", f"{P}/history/series/{series['id']}", s.ua)
            assert [(r["revision"], r["noise"]) for r in table["rows"]] == [
                ("c0", False), ("c1", False), ("c2", False), ("c3", False), ("c4", False),
                ("c5", True)]
            assert table["rows"][4]["alerts"] == [alert["id"]]
            csv = await s.api("GET", f"{P}/history/series/{series['id']}?format=csv", s.ua)
            lines = csv.splitlines()
            assert lines[0].startswith("series,branch,testbed,benchmark,measure,unit,revision")
            assert len(lines) == 7 and ",c4,2.0," in lines[5]

            # Lifecycle: confirm the open alert, dismiss it; a noise alert cannot be confirmed.
            assert (await s.api("POST", f"{P}/alerts/{alert['id']}/confirm", s.ua))[
                "state"] == "confirmed"
            assert (await s.api("POST", f"{P}/alerts/{alert['id']}/dismiss", s.ua))[
                "state"] == "dismissed"
            await s.api("POST", f"{P}/alerts/{noise['id']}/confirm", s.ua, status=409)
            await ws.close()

    async def _series_with(s: Server, n: int) -> Optional[dict]:
        rows = await s.api("GET", f"/v0/projects/{s.a}/history/series?measure=wall_time", s.ua)
        return rows[0] if rows and rows[0]["points"] >= n else None

    async def _alerts(s: Server, n: int = 1) -> list:
        rows = await s.api("GET", f"/v0/projects/{s.a}/alerts", s.ua)
        return rows if len(rows) >= n else []

    async def _confirmation(s: Server, alert: str) -> Optional[dict]:
        a = await s.api("GET", f"/v0/projects/{s.a}/alerts/{alert}", s.ua)
        return a["confirmation"]

    async def _decided(s: Server, alert: str) -> Optional[dict]:
        a = await s.api("GET", f"/v0/projects/{s.a}/alerts/{alert}", s.ua)
        return a if a["state"] != "confirming" else None

    run(body())


BMF = {"fib": {"latency": {"value": 10.0, "lower_value": 9.0, "upper_value": 11.0}}}


def test_uploads_isolation_and_hostile_input(db_url):
    async def body():
        async with Server(db_url) as s:
            A, B = f"/v0/projects/{s.a}", f"/v0/projects/{s.b}"
            up = await s.api("POST", f"{A}/history/results", s.ua, {
                "branch": "main", "commit": "abc", "testbed": "ci-box", "results": BMF}, 201)
            assert up["testbed"]["name"] == "ci-box" and len(up["points"]) == 1
            assert up["points"][0]["lower_value"] == 9.0
            series = up["points"][0]["series"]
            # A list of documents: one sample each.
            up = await s.api("POST", f"{A}/history/results", s.ua, {
                "branch": "main", "commit": "def", "testbed": "ci-box",
                "results": [BMF, {"fib": {"latency": {"value": 12.0}}}]}, 201)
            assert up["points"][0]["n"] == 2 and up["points"][0]["series"] == series
            # Another testbed is another series: never mixed.
            up = await s.api("POST", f"{A}/history/results", s.ua, {
                "branch": "main", "commit": "def", "testbed": {"cpu_model": "Other"},
                "results": BMF}, 201)
            assert up["points"][0]["series"] != series
            assert len(await s.api("GET", f"{A}/history/series", s.ua)) == 2
            assert len(await s.api("GET", f"{A}/history/series?testbed=ci-box", s.ua)) == 1

            # Project isolation: b's token sees nothing of a, by listing or by id.
            for path in ("/history/series", "/history/testbeds", "/alerts",
                         "/history/alert-configs"):
                await s.api("GET", A + path, s.ub, status=404)
                assert await s.api("GET", B + path, s.ub) == []
            await s.api("GET", f"{A}/history/series/{series}", s.ub, status=404)
            await s.api("GET", f"{B}/history/series/{series}", s.ub, status=404)
            await s.api("POST", f"{A}/history/results", s.ub, {
                "branch": "main", "commit": "x", "testbed": "t", "results": BMF}, status=404)
            await s.api("GET", f"{A}/history/series", "benchrun_user_" + "x" * 32, status=401)

            # Hostile and broken uploads: a clear 400, nothing stored.
            def upload(**kw: Any) -> dict:
                return {"branch": "main", "commit": "c", "testbed": "t", "results": BMF, **kw}

            bad = [
                (upload(results={"fib": {"latency": {"value": "fast"}}}), "expected a number"),
                (upload(results={"fib": {"latency": {"value": 1, "extra": 2}}}), "unknown key"),
                (upload(results=[]), "list of 1-"),
                (upload(results={f"b{i}": {"m": {"value": 1}} for i in range(1001)}),
                 "more than 1000"),
                (upload(branch="x" * 300), "at most 256"),
                (upload(commit="a\nb"), "control characters"),
                (upload(testbed={"nested": {"a": 1}}), "flat object"),
                (upload(testbed={"k": "v" * 5000}), "at most 4096"),
                (upload(testbed=7), "testbed name or an object"),
                (upload(at=-1), "unix seconds"),
                (upload(surprise=1), "unknown field"),
                (upload(rerun={"image": "evil.example.com/x:1"}), "not allowed"),
            ]
            for doc, why in bad:
                err = await s.api("POST", f"{A}/history/results", s.ua, doc, status=400)
                assert why in err["error"], (why, err)
            async with s.session.post(f"{s.url}{A}/history/results", data=b'{"results": NaN}',
                                      headers={"Authorization": f"Bearer {s.ua}"}) as r:
                assert r.status == 400
            rows = await s.api("GET", f"{A}/history/series", s.ua)
            assert sum(r["points"] for r in rows) == 3

            # Alert configurations are checked by building the detectors.
            for cfg, why in [
                ({"branch": "m", "measure": "x", "model": "nope", "params": {"upper": 1}},
                 "threshold model"),
                ({"branch": "m", "measure": "x", "model": "percentage", "params": {}},
                 "upper or a lower"),
                ({"branch": "m", "measure": "x"}, "set a threshold model"),
                ({"branch": "m", "measure": "x", "change_points": True,
                  "params": {"alpha": 2}}, "alpha"),
                ({"branch": "m", "measure": "x", "change_points": True, "repetitions": 1000},
                 "repetitions"),
            ]:
                err = await s.api("PUT", f"{A}/history/alert-configs", s.ua, cfg, status=400)
                assert why in err["error"], (why, err)

            # A point without a way to re-run it opens its alert at once, saying why.
            await s.api("PUT", f"{A}/history/alert-configs", s.ua, {
                "branch": "main", "measure": "latency", "model": "static",
                "params": {"upper": 20}}, 201)
            up = await s.api("POST", f"{A}/history/results", s.ua, {
                "branch": "main", "commit": "ghi", "testbed": "ci-box",
                "results": {"fib": {"latency": {"value": 25.0}}}}, 201)
            assert [a["state"] for a in up["alerts"]] == ["open"]
            assert up["alerts"][0]["confirmation"]["status"] == "unavailable"

    run(body())


def test_change_points_raise_one_alert_per_change(db_url):
    async def body():
        async with Server(db_url) as s:
            A = f"/v0/projects/{s.a}"
            await s.api("PUT", f"{A}/history/alert-configs", s.ua, {
                "branch": "main", "benchmark": "fib", "measure": "ns", "change_points": True,
                "params": {"min_size": 5}}, 201)
            noise = [0.0, 0.1, -0.1, 0.05, -0.05, 0.08, -0.08]
            values = [10 + noise[i % 7] for i in range(20)] + [13 + noise[i % 7] for i in range(8)]
            for i, v in enumerate(values):
                await s.api("POST", f"{A}/history/results", s.ua, {
                    "branch": "main", "commit": f"c{i:02}", "testbed": "box", "at": 1e9 + i,
                    "results": {"fib": {"ns": {"value": v}}}}, 201)
            alerts = await s.api("GET", f"{A}/alerts", s.ua)
            assert len(alerts) == 1, alerts
            a = alerts[0]
            assert a["kind"] == "change_point" and a["head_revision"] in ("c19", "c20", "c21")
            assert 0.2 < a["detail"]["change"] < 0.35
            # Uploaded points have no recipe to re-run: raised at once, saying so.
            assert a["state"] == "open" and a["confirmation"]["status"] == "unavailable"

    run(body())


def test_history_cli(tmp_path):
    import os
    import sys

    async def cli(s: Server, *args: str, ok: bool = True) -> str:
        env = {**os.environ, "BENCHRUN_SERVER": s.url, "BENCHRUN_TOKEN": s.ua,
               "BENCHRUN_PROJECT": s.a}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchrun.cli.main", "history", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert (proc.returncode == 0) == ok, (args, proc.returncode, err.decode())
        return out.decode() if ok else err.decode()

    async def body():
        async with Server(f"sqlite:///{tmp_path / 'jobs.db'}") as s:
            out = await cli(s, "config", "set", "--branch", "main", "--measure", "latency",
                            "--model", "static", "--upper", "20", "--min-sample", "0",
                            "--json")
            assert json.loads(out)["params"] == {"upper": 20.0, "min_sample": 0}
            bmf = tmp_path / "bmf.json"
            for commit, v in (("a1", 10.0), ("a2", 30.0)):
                bmf.write_text(json.dumps({"fib": {"latency": {"value": v}}}))
                up = json.loads(await cli(s, "upload", str(bmf), "--branch", "main",
                                          "--commit", commit, "--testbed", "ci-box"))
            assert [a["state"] for a in up["alerts"]] == ["open"]
            series = json.loads(await cli(s, "series", "--json"))
            assert [(x["benchmark"], x["measure"], x["points"]) for x in series] == [
                ("fib", "latency", 2)]
            csv = await cli(s, "show", series[0]["id"], "--csv")
            assert csv.splitlines()[2].split(",")[6:8] == ["a2", "30.0"]
            table = await cli(s, "show", series[0]["id"])
            assert "main / ci-box / fib / latency" in table and "alert:" in table
            alerts = await cli(s, "alerts", "--state", "open")
            assert "threshold:static" in alerts and "a1..a2" in alerts
            aid = alerts.split()[0]
            assert (await cli(s, "dismiss", aid)).strip() == "dismissed"
            assert "dismissed" in await cli(s, "alert", aid)
            assert "ci-box" in await cli(s, "testbeds")
            bmf.write_text("{not json")
            err = await cli(s, "upload", str(bmf), "--branch", "main", "--commit", "x",
                            "--testbed", "t", ok=False)
            assert "not JSON" in err and "Traceback" not in err

    run(body())
