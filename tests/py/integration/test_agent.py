"""`benchrun agent` against a fake job server written here (aiohttp on loopback, speaking Bencher's
runner protocol by hand, scripted per test), running real images pulled from a real registry.
Every message the agent sends is checked against upstream's JSON shapes (tests/py/fixtures/bencher).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import pytest
from aiohttp import WSMsgType, web

import benchrun
from benchrun.jobs import protocol
from support.ocilayout import busybox_layer, skopeo_push, write_layout
from support.registry import wait_for



def runs(test: Callable) -> Callable:
    """Marks a test that runs the agent: real runs need root, images come from docker-registry."""
    return pytest.mark.root(pytest.mark.registry(test))


FIXTURES = Path(__file__).parent.parent / "fixtures" / "bencher"
PYTHON_DIR = Path(benchrun.__file__).parent.parent  # agents import the benchrun this test does
KEY = "bencher_runner_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5"
RUNNER = "test-runner"
PROJECT = "b2e5a8f0-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
OCI_TOKEN = "test-oci-token-" + "x" * 20
MAX_MSG = 64 << 20

# --- upstream shapes --------------------------------------------------------------------------


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def shape(value: Any) -> Any:
    """JSON value -> its shape: keys and JSON types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def assert_upstream_shape(msg: dict) -> None:
    """Same keys and types as upstream's message of that event. Optional upstream fields may be
    absent (ready's poll_timeout/runner, an iteration's stdout/stderr/output); the only extra key
    allowed are benchrun's documented `timings`, `host_state`, `iterations` and `testbed`
    extensions on completed/failed."""
    event = msg["event"]
    ref = shape(fixture(f"runner_{event}"))
    got = shape(msg)
    if event in ("completed", "failed") and "timings" in got:
        assert got.pop("timings") == {"pull": "number", "prepare": "number"}
    if event in ("completed", "failed") and "host_state" in got:
        host = msg["host_state"]
        assert isinstance(host, dict) and {"tuned", "differs"} <= set(host), host
        got.pop("host_state")
    if event in ("completed", "failed") and "iterations" in got:
        its = msg["iterations"]
        assert len(its) == len(msg["results"]), msg
        assert all(it["metrics"]["wall_time"]["unit"] == "s" for it in its), its
        got.pop("iterations")
    if event in ("completed", "failed") and "testbed" in got:
        assert {"cpu_model", "kernel", "backend"} <= set(msg["testbed"]), msg["testbed"]
        got.pop("testbed")
    optional = {"poll_timeout", "runner"} if event == "ready" else set()  # `?` upstream
    assert set(ref) - optional <= set(got) <= set(ref), (event, sorted(got), sorted(ref))
    for key, want in ref.items():
        if key not in got:
            continue
        if key == "results":
            for it in msg["results"]:
                item = shape(it)
                assert set(item) <= set(want[0]) and "exit_code" in item, item
                for k, t in item.items():
                    if k == "output":
                        assert all(v == "string" for v in t.values())
                    else:
                        assert t == want[0][k], (k, t)
        else:
            assert got[key] == want, (event, key, got[key], want)
    if event in ("completed", "failed", "canceled"):
        uuid.UUID(msg["job"])


# --- the fake job server ----------------------------------------------------------------------


class Closed(Exception):
    pass


class Channel:
    """The server's end of one agent connection, as seen by a test script."""

    def __init__(self, server: "FakeServer", ws: web.WebSocketResponse, index: int) -> None:
        self.server, self.ws, self.index = server, ws, index

    async def recv(self, timeout: float = 30.0) -> dict:
        while True:
            frame = await asyncio.wait_for(self.ws.receive(), timeout)
            if frame.type != WSMsgType.TEXT:
                raise Closed(f"connection {self.index}: {frame.type.name}")
            msg = json.loads(frame.data)
            assert_upstream_shape(msg)
            protocol.parse_runner_message(frame.data, MAX_MSG)  # and valid for our own server
            self.server.log.append((time.monotonic(), self.index, msg))
            return msg

    async def send(self, msg: dict) -> None:
        await self.ws.send_str(json.dumps(msg))

    async def drain(self, timeout: float = 60.0) -> None:
        """Records what the agent sends, answering nothing, until it closes the channel."""
        try:
            while True:
                await self.recv(timeout)
        except Closed:
            pass

    async def expect(self, event: str, timeout: float = 30.0) -> dict:
        msg = await self.recv(timeout)
        assert msg["event"] == event, (event, msg)
        return msg

    async def run_job(self, job: dict, cancel_after: Optional[float] = None,
                      cancel_on_running: Optional[float] = None, ack_terminal: bool = True,
                      close_on_running: bool = False) -> dict:
        """Answers heartbeats and running with ack{job} (as upstream's server does), optionally
        sends cancel, returns the terminal message (acked unless told not to)."""
        await self.send(job)
        t0 = time.monotonic()
        cancel_at = t0 + cancel_after if cancel_after is not None else None
        while True:
            timeout = 60.0
            if cancel_at is not None:
                timeout = max(0.01, cancel_at - time.monotonic())
            try:
                msg = await self.recv(timeout)
            except asyncio.TimeoutError:
                if cancel_at is not None and time.monotonic() >= cancel_at:
                    cancel_at = None
                    await self.send(protocol.cancel())
                    continue
                raise
            if msg["event"] in protocol.TERMINAL_EVENTS:
                if ack_terminal:
                    await self.send(protocol.ack(msg["job"]))
                return msg
            if msg["event"] == "running":
                if close_on_running:
                    await self.ws.close()
                    raise Closed("closed on running")
                if cancel_on_running is not None:
                    cancel_at = time.monotonic() + cancel_on_running
            await self.send(protocol.ack(job["uuid"]))


Script = Callable[[Channel], Awaitable[None]]


class FakeServer:
    """aiohttp on 127.0.0.1:0 in its own thread. Each agent connection runs ``script(channel)``;
    what the agent sent is in .log as (monotonic time, connection index, message)."""

    def __init__(self, script: Script, key: str = KEY) -> None:
        self.script = script
        self.key = key
        self.log: list[tuple[float, int, dict]] = []
        self.headers: list[dict] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "fake server did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v0/runners/{runner}/channel", self._channel)
        self._runner = web.AppRunner(app)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=1.0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready.set()
        self.loop.run_forever()

    async def _channel(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        if request.match_info["runner"] != RUNNER or \
                request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.Response(status=401, text="bad runner key")
        ws = web.WebSocketResponse(max_msg_size=MAX_MSG)
        await ws.prepare(request)
        self.connections += 1
        ch = Channel(self, ws, self.connections)
        try:
            await self.script(ch)
        except (Closed, ConnectionError):
            pass
        except BaseException as e:  # surfaced by the test through .errors
            self.errors.append(e)
        finally:
            await ws.close()
        return ws

    def events(self, connection: Optional[int] = None) -> list[str]:
        return [m["event"] for _, c, m in self.log if connection in (None, c)]

    def messages(self, event: str) -> list[dict]:
        return [m for _, _, m in self.log if m["event"] == event]

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# --- a registry proxy that records headers and can go slow --------------------------------------


class RecordingProxy:
    """HTTP proxy in front of the registry: records (time, method, path, Authorization) of every
    request. mode "slow": blob bodies trickle out (8 KiB every 50 ms, a 1 MiB layer in ~6 s);
    "stall": blob bodies never come (the connection stays open until stop())."""

    def __init__(self, upstream: str, mode: str = "") -> None:
        self.upstream = upstream
        self.mode = mode
        self.requests: list[tuple[float, str, str, Optional[str]]] = []
        self.blob_done: list[tuple[float, int]] = []  # (time, size) of blobs sent whole
        self.stopping = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self, "GET")

            def do_HEAD(self) -> None:
                proxy._forward(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _forward(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.requests.append((time.monotonic(), method, h.path, h.headers.get("Authorization")))
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, h.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        if method != "GET":
            return
        is_blob = "/blobs/sha256:" in h.path
        try:
            if is_blob and self.mode == "stall":
                self.stopping.wait(120)
                return
            if is_blob and self.mode == "slow":
                for i in range(0, len(body), 8192):
                    if self.stopping.wait(0.05):
                        return
                    h.wfile.write(body[i:i + 8192])
                    h.wfile.flush()
            else:
                h.wfile.write(body)
        except OSError:
            return  # the agent hung up (a canceled pull)
        if is_blob:
            self.blob_done.append((time.monotonic(), len(body)))

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


# --- helpers ------------------------------------------------------------------------------------

AGENT = """
import json, sys
from benchrun.agent import configure_logging, load_key, make_config, run_agent
configure_logging(verbose=True)
options = json.loads(sys.argv[3])
options["insecure_registries"] = tuple(options.get("insecure_registries", ()))
sys.exit(run_agent(make_config(sys.argv[1], sys.argv[2], load_key(None), **options)))
"""


class AgentProcess:
    def __init__(self, server: FakeServer, tmp: Path, key: str = KEY, **options: Any) -> None:
        options.setdefault("store", str(tmp / "store"))
        options.setdefault("backoff_initial", 0.05)
        options.setdefault("backoff_max", 0.5)
        options.setdefault("poll_timeout", 5)
        self.log_path = tmp / f"agent-{time.monotonic_ns()}.log"
        env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), BENCHRUN_RUNNER_KEY=key)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", AGENT, server.url, RUNNER, json.dumps(options)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"agent still running after {timeout} s:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def job_message(image: "PushedImage", *, cmd: list[str], iter: int = 1, allow_failure: bool = False,
                file_paths: Optional[list[str]] = None, timeout: int = 60, network: bool = False,
                registry: Optional[str] = None, sandbox: Optional[str] = None,
                env: Optional[dict] = None) -> dict:
    """An upstream-shaped job message (the fields of tests/py/fixtures/bencher/server_job.json)."""
    msg = fixture("server_job")
    msg["uuid"] = str(uuid.uuid4())
    msg["spec"].update(sandbox=sandbox, cpu=1, memory=256 << 20, network=network)
    msg["config"] = {
        "registry": f"http://{registry or image.host}", "project": PROJECT, "digest": image.digest,
        "entrypoint": ["/bin/sh", "-c"], "cmd": cmd, "env": env or {"GREETING": "hi"},
        "timeout": timeout, "file_paths": file_paths or [], "iter": iter,
        "allow_failure": allow_failure,
    }
    msg["oci_token"] = OCI_TOKEN
    msg["timeout"] = timeout
    return msg


class PushedImage:
    def __init__(self, host: str, digest: str) -> None:
        self.host, self.digest = host, digest


@pytest.fixture(scope="module")
def image(registry, tmp_path_factory) -> PushedImage:
    info = write_layout(tmp_path_factory.mktemp("agent-image"), [busybox_layer()],
                        config={"Env": ["PATH=/bin"], "WorkingDir": "/work"})
    skopeo_push(info, f"{registry.host}/{PROJECT}:latest")
    return PushedImage(registry.host, info.manifest_digest)


@pytest.fixture
def harness(tmp_path):
    """start(script, **agent options) -> (server, agent); everything is stopped at teardown."""
    owned: list[Any] = []

    def start(script: Script, agent: bool = True, **options: Any):
        server = FakeServer(script)
        owned.append(server)
        proc = None
        if agent:
            proc = AgentProcess(server, tmp_path, **options)
            owned.append(proc)
        return server, proc

    yield start
    for thing in reversed(owned):
        thing.stop()
    errors = [e for s in owned if isinstance(s, FakeServer) for e in s.errors]
    if errors:
        raise errors[0]


def processes(marker: str) -> list[int]:
    """PIDs of `sleep <marker>`: the workload of a test, found by its unique argument."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def run_cgroups(pid: int) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return list(root.glob(f"*/benchrun/run-{pid}-*")) + list(root.glob(f"benchrun/run-{pid}-*"))


def one_job(job: dict, **kwargs: Any) -> Script:
    """ready -> the job (acks, optional cancel) -> terminal + ack."""
    async def script(ch: Channel) -> None:
        await ch.expect("ready")
        await ch.run_job(job, **kwargs)
    return script


# --- interoperability: upstream fixtures --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("server_*.json")))
def test_upstream_server_messages_parse(name):
    text = (FIXTURES / f"{name}.json").read_text()
    msg = protocol.parse_server_message(text, MAX_MSG)
    assert msg["event"] == json.loads(text)["event"]
    if msg["event"] == "job":
        job = msg["claimed"]
        doc = json.loads(text)
        assert job.uuid == doc["uuid"] and job.timeout == doc["timeout"]
        assert job.config.digest == doc["config"]["digest"]
        assert job.spec.cpu == doc["spec"]["cpu"] and job.spec.sandbox == doc["spec"]["sandbox"]


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("runner_*.json")))
def test_upstream_runner_messages_parse_and_builders_match(name):
    text = (FIXTURES / f"{name}.json").read_text()
    doc = protocol.parse_runner_message(text, MAX_MSG)
    built = {
        "ready": lambda: protocol.ready(doc["poll_timeout"], doc["runner"]),
        "running": protocol.running,
        "heartbeat": protocol.heartbeat,
        "completed": lambda: protocol.completed(doc["job"], doc["results"]),
        "failed": lambda: protocol.failed(doc["job"], doc["results"], doc["error"]),
        "canceled": lambda: protocol.canceled(doc["job"]),
    }[doc["event"]]()
    assert built == json.loads(text)
    assert_upstream_shape(built)


def test_agent_ready_without_timings_is_exactly_upstream():
    from benchrun.agent import runner_info
    from benchrun.agent.executor import Outcome

    ready = protocol.ready(55, runner_info())
    assert shape(ready) == shape(fixture("runner_ready"))
    host = {"tuned": False, "differs": ["aslr"], "cpus": None, "journal": False, "noise": None}
    out = Outcome("completed", [protocol.iteration_output(0, "a", "b", {"/tmp/results.json": "y"})],
                  timings={"pull": 1.0, "prepare": 0.5}, host_state=host)
    job = str(uuid.uuid4())
    assert shape(out.message(job, report_timings=False, report_host_state=False)) == \
        shape(fixture("runner_completed"))
    assert out.message(job)["timings"] == {"pull": 1.0, "prepare": 0.5}
    assert out.message(job)["host_state"] == host
    assert "host_state" not in out.message(job, report_host_state=False)
    # One the server would refuse (over protocol.MAX_HOST_STATE) is left out, not sent.
    big = dataclasses.replace(out, host_state={**host, "x": "a" * protocol.MAX_HOST_STATE})
    assert "host_state" not in big.message(job) and big.message(job)["timings"]
    failed = dataclasses.replace(out, event="failed", error="boom")
    assert failed.message(job)["host_state"] == host


# --- the agent against the fake server ---------------------------------------------------------


@runs
def test_job_runs_and_completes_with_results(harness, image, registry, tmp_path):
    proxy = RecordingProxy(registry.host)
    try:
        job = job_message(image, registry=proxy.host, file_paths=["/tmp/r.json", "/tmp/missing"],
                          cmd=["sleep 2.5; echo out-$GREETING; echo err >&2; "
                               "echo '{\"m\": 1}' > /tmp/r.json"])
        server, agent = harness(one_job(job), once=True)
        assert agent.wait() == 0, agent.log()
    finally:
        proxy.stop()
    log = server.log
    events = server.events()
    # ready first, with poll_timeout and runner metadata as upstream
    ready = log[0][2]
    assert ready["event"] == "ready" and ready["poll_timeout"] == 5
    assert ready["runner"]["os"] == "linux" and ready["runner"]["arch"] in ("x86_64", "aarch64")
    assert ready["runner"]["version"]
    # the runner key as Bearer on the upgrade
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    # pulled with the job's oci_token as Bearer
    assert any(auth == f"Bearer {OCI_TOKEN}" for _, _, path, auth in proxy.requests
               if "/manifests/" in path)
    # running once, after the image was pulled; then heartbeats about every second
    assert events.count("running") == 1
    t_running = next(t for t, _, m in log if m["event"] == "running")
    assert proxy.blob_done and max(t for t, _ in proxy.blob_done) < t_running
    beats = [t for t, _, m in log if m["event"] == "heartbeat"]
    assert len(beats) >= 2, events
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert all(0.7 < g < 1.5 for g in gaps), gaps
    assert events[-1] == "completed"
    done = server.messages("completed")[0]
    assert done["job"] == job["uuid"]
    assert done["results"] == [{"exit_code": 0, "stdout": "out-hi\n", "stderr": "err\n",
                                "output": {"/tmp/r.json": '{"m": 1}\n'}}]
    assert done["timings"]["pull"] > 0 and done["timings"]["prepare"] > 0
    assert {"tuned", "differs"} <= set(done["host_state"]), done  # the sandbox run's attestation
    assert "acknowledged" in agent.log()


@runs
def test_iterations_and_allow_failure(harness, image):
    jobs = [job_message(image, cmd=["echo run"], iter=3),
            job_message(image, cmd=["echo x; exit 3"], iter=3),
            job_message(image, cmd=["echo x; exit 3"], iter=3, allow_failure=True),
            job_message(image, cmd=["echo never"], iter=0),
            job_message(image, cmd=["echo never"], network=True)]
    terminal: list[dict] = []

    async def script(ch: Channel) -> None:
        for job in jobs:
            await ch.expect("ready")
            terminal.append(await ch.run_job(job))
        await ch.drain()  # the next ready stays unanswered, as in a long poll

    server, agent = harness(script)
    try:
        assert wait_for(lambda: len(terminal) == len(jobs), timeout=120), agent.log()
    finally:
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0, agent.log()
    ok3, fail1, allowed, zero, net = terminal
    assert ok3["event"] == "completed"
    assert ok3["results"] == [{"exit_code": 0, "stdout": "run\n"}] * 3
    assert fail1["event"] == "failed"
    assert fail1["results"] == [{"exit_code": 3, "stdout": "x\n"}]
    assert fail1["error"] == "Benchmark exited with non-zero exit code: 3"
    assert allowed["event"] == "completed"
    assert allowed["results"] == [{"exit_code": 3, "stdout": "x\n"}] * 3
    assert zero["event"] == "completed" and zero["results"] == []
    assert net["event"] == "failed" and "network" in net["error"] and net["results"] == []
    # `running` for each job that started a workload (iter=0 starts none but must reach running
    # before completed); none for the refused one.
    assert server.events().count("running") == 4


@runs
def test_cancel_while_running_kills_the_workload(harness, image, tmp_path):
    marker = "3631"
    job = job_message(image, cmd=[f"sleep {marker}"])
    server, agent = harness(one_job(job, cancel_on_running=1.5), once=True)
    assert wait_for(lambda: processes(marker), timeout=60), agent.log()
    assert agent.wait(30) == 0, agent.log()
    assert server.events()[-1] == "canceled"
    assert server.messages("canceled") == [{"event": "canceled", "job": job["uuid"]}]
    assert processes(marker) == []
    assert run_cgroups(agent.proc.pid) == []
    assert list((tmp_path / "store" / "runs").iterdir()) == []


@runs
@pytest.mark.parametrize("mode", ["slow", "stall"])
def test_cancel_while_pulling(harness, image, registry, tmp_path, mode):
    """slow: the pull stops at its next progress report (every 256 KiB), before the layer is
    complete. stall: no progress at all, so the agent reports canceled after cancel_grace and
    abandons the pull's thread."""
    proxy = RecordingProxy(registry.host, mode=mode)
    try:
        job = job_message(image, registry=proxy.host, cmd=["echo never"])
        server, agent = harness(one_job(job, cancel_after=1.5), once=True, cancel_grace=2.0)
        assert agent.wait(60) == 0, agent.log()
        t_cancel = next(t for t, _, m in server.log if m["event"] == "canceled")
        t_job = server.log[0][0]
    finally:
        proxy.stop()
    events = server.events()
    assert "running" not in events  # never started: the pull was stopped
    assert events[-1] == "canceled"
    assert events.count("heartbeat") >= 1  # liveness while pulling
    assert t_cancel - t_job < 1.5 + 2.0 + 1.0, t_cancel - t_job
    assert any("/blobs/" in path for _, _, path, _ in proxy.requests)
    assert all(size < 100_000 for _, size in proxy.blob_done)  # the layer never came whole
    if mode == "stall":
        assert "abandoning" in agent.log()
    else:
        assert "abandoning" not in agent.log()


@runs
def test_unacked_result_is_resent_first_after_reconnect(harness, image):
    job = job_message(image, cmd=["echo hi"])

    async def script(ch: Channel) -> None:
        if ch.index == 1:
            await ch.expect("ready")
            await ch.run_job(job, ack_terminal=False)
            await ch.drain()  # no ack: the agent gives up on this channel
        elif ch.index == 2:
            await ch.expect("completed")  # resent first, no ack again
            await ch.drain()
        elif ch.index == 3:
            msg = await ch.expect("completed")
            await ch.send(protocol.ack(msg["job"]))
            await ch.expect("ready")
            await ch.send(protocol.no_job())
            await ch.drain()
        else:
            await ch.drain()

    server, agent = harness(script, ack_timeout=0.5)
    try:
        assert wait_for(lambda: server.events(3)[:2] == ["completed", "ready"], timeout=60), \
            agent.log()
    finally:
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0, agent.log()
    assert server.events(2) == ["completed"]
    assert len(server.messages("completed")) == 3
    assert all(m == server.messages("completed")[0] for m in server.messages("completed"))


@runs
def test_unacked_result_is_dropped_after_five_resends(harness, image):
    job = job_message(image, cmd=["echo hi"])

    async def script(ch: Channel) -> None:
        if ch.index == 1:
            await ch.expect("ready")
            await ch.run_job(job, ack_terminal=False)
        await ch.drain()  # never acked

    server, agent = harness(script, once=True, ack_timeout=0.3)
    assert agent.wait(60) == 1, agent.log()  # --once and the result was lost
    assert len(server.messages("completed")) == 6  # sent once, resent 5 times
    assert server.events().count("ready") == 1
    assert "dropping it" in agent.log()


@runs
def test_server_closes_mid_job_then_result_is_delivered(harness, image):
    job = job_message(image, cmd=["sleep 2; echo done"])
    delivered: list[dict] = []

    async def script(ch: Channel) -> None:
        if ch.index == 1:
            await ch.expect("ready")
            await ch.run_job(job, close_on_running=True)
        else:
            # after the reconnect: running again (upstream's reconnection signal), heartbeats,
            # then the result
            await ch.expect("running")
            while True:
                msg = await ch.recv()
                if msg["event"] in protocol.TERMINAL_EVENTS:
                    delivered.append(msg)
                    await ch.send(protocol.ack(msg["job"]))
                    return
                await ch.send(protocol.ack(job["uuid"]))

    server, agent = harness(script, once=True)
    assert agent.wait(60) == 0, agent.log()
    assert server.connections == 2
    assert delivered and delivered[0]["event"] == "completed"
    assert delivered[0]["results"] == [{"exit_code": 0, "stdout": "done\n"}]
    assert "heartbeat" in server.events(2)


@runs
def test_once_exits_when_no_job_comes(harness):
    async def script(ch: Channel) -> None:
        while True:
            msg = await ch.expect("ready")
            assert msg["poll_timeout"] <= 2
            await asyncio.sleep(0.3)
            await ch.send(protocol.no_job())

    t0 = time.monotonic()
    server, agent = harness(script, once=True, once_wait=1.5)
    assert agent.wait(30) == 0, agent.log()
    assert 1.4 < time.monotonic() - t0 < 15
    assert server.events() and set(server.events()) == {"ready"}


@runs
def test_update_offer_is_declined_and_runner_metadata_dropped(harness):
    async def script(ch: Channel) -> None:
        msg = await ch.expect("ready")
        if ch.index == 1:
            assert "runner" in msg
            await ch.send(fixture("server_update"))  # then the server ends the channel
            return
        assert "runner" not in msg
        await asyncio.sleep(0.3)
        await ch.send(protocol.no_job())
        await ch.drain()

    server, agent = harness(script, once=True, once_wait=1.0)
    assert agent.wait(30) == 0, agent.log()
    assert server.connections >= 2
    assert "does not self-update" in agent.log()


@runs
def test_sigterm_mid_job_cancels_and_exits_0(harness, image, tmp_path):
    marker = "3637"
    job = job_message(image, cmd=[f"sleep {marker}"])

    async def script(ch: Channel) -> None:
        await ch.expect("ready")
        await ch.run_job(job)
        await ch.drain()

    server, agent = harness(script)
    assert wait_for(lambda: processes(marker) and "running" in server.events(), timeout=60), \
        agent.log()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.log()
    assert server.events()[-1] == "canceled"
    assert processes(marker) == []
    assert list((tmp_path / "store" / "runs").iterdir()) == []


@runs
def test_drain_timeout_lets_the_job_finish(harness, image):
    job = job_message(image, cmd=["sleep 1.5; echo finished"])

    async def script(ch: Channel) -> None:
        await ch.expect("ready")
        await ch.run_job(job)
        await ch.drain()

    server, agent = harness(script, drain_timeout=30)
    assert wait_for(lambda: "running" in server.events(), timeout=60), agent.log()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.log()
    assert server.messages("completed")[0]["results"] == [{"exit_code": 0, "stdout": "finished\n"}]
    assert "ready" not in server.events()[1:]  # no new job after SIGTERM


@runs
def test_wrong_key_is_fatal(harness, tmp_path):
    async def script(ch: Channel) -> None:
        raise AssertionError("a connection with a wrong key was accepted")

    server, agent = harness(script, key="bencher_runner_" + "0" * 30)
    assert agent.wait(30) == 1, agent.log()
    assert "refused the runner key" in agent.log()
    assert server.connections == 0


@runs
def test_results_larger_than_the_limit_are_truncated_and_reported_failed(harness, image):
    job = job_message(image, cmd=["head -c 3000000 /bin/busybox | base64"])
    server, agent = harness(one_job(job), once=True, max_message=1 << 20)
    assert agent.wait(60) == 0, agent.log()
    msg = server.messages("failed")[0]
    assert msg["error"] == "results exceed the 1 MiB message limit; outputs truncated"
    assert len(json.dumps(msg)) <= 1 << 20
    assert msg["results"][0]["exit_code"] == 0
    assert "truncated" in msg["results"][0]["stdout"]


@runs
def test_leftovers_of_a_sigkilled_agent_are_removed_at_the_next_start(harness, image, tmp_path):
    marker = "3641"
    job = job_message(image, cmd=[f"sleep {marker}"])

    async def script(ch: Channel) -> None:
        if ch.index == 1:
            await ch.expect("ready")
            await ch.run_job(job)
        else:
            while True:
                await ch.expect("ready")
                await asyncio.sleep(0.2)
                await ch.send(protocol.no_job())

    server, first = harness(script)
    assert wait_for(lambda: processes(marker) and "running" in server.events(), timeout=60), \
        first.log()
    first.proc.kill()
    first.proc.wait(10)
    assert processes(marker), "the workload died with the agent: nothing to clean up"
    second = AgentProcess(server, tmp_path, once=True, once_wait=1.0)
    try:
        assert second.wait(30) == 0, second.log()
    finally:
        second.stop()
    assert processes(marker) == []
    assert run_cgroups(first.proc.pid) == []
    assert list((tmp_path / "store" / "runs").iterdir()) == []


@runs
def test_job_spec_disk_bounds_the_writable_layer(harness, image):
    # spec.disk (and spec.memory, spec.cpu) are the run's limits; the rest are benchrun's defaults.
    # overlayfs reports its upper filesystem's size: the job's 32 MiB ext4.
    job = job_message(image, cmd=["df -k / | tail -1"])
    job["spec"]["disk"] = 32 << 20
    server, agent = harness(one_job(job), once=True)
    assert agent.wait() == 0, agent.log()
    done = server.messages("completed")[0]
    total_kib = int(done["results"][0]["stdout"].split()[1])
    assert 16 << 10 < total_kib <= 32 << 10, done["results"]
