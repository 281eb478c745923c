"""A job server and runner agents as real subprocesses (`benchrun serve`, `benchrun agent`) for
end-to-end tests: started on free loopback ports, stopped (and waited for) on teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

import benchrun
from support.registry import free_port


def _benchrun() -> list[str]:
    return [sys.executable, "-m", "benchrun.cli.main"]


class JobServer:
    """`benchrun serve` on 127.0.0.1:<free port> with db_url; .url, .admin_token, .client()."""

    def __init__(self, work: Path, db_url: str, *, heartbeat_timeout: float = 90.0,
                 grace: float = 60.0, port: Optional[int] = None,
                 allow_registries: tuple[str, ...] = ()) -> None:
        self.work = work
        self.db_url = db_url
        self.heartbeat_timeout = heartbeat_timeout
        self.grace = grace
        self.allow_registries = allow_registries  # --allow-registry: none unless given
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = work / "admin-token"
        self.log = work / f"server-{self.port}.log"
        self.proc: Optional[subprocess.Popen] = None
        work.mkdir(parents=True, exist_ok=True)
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            _benchrun() + ["serve", "--db", self.db_url, "--listen", f"127.0.0.1:{self.port}",
                           "--heartbeat-timeout", str(self.heartbeat_timeout),
                           "--grace", str(self.grace),
                           "--admin-token-file", str(self.token_file),
                           *(f"--allow-registry={r}" for r in self.allow_registries)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"benchrun serve exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/v0/openapi.json", timeout=1)
                if self.token_file.exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"benchrun serve did not start: {self.log.read_text()[-2000:]}")

    @property
    def admin_token(self) -> str:
        return self.token_file.read_text().strip()

    def client(self, token: Optional[str] = None) -> benchrun.Client:
        return benchrun.Client(self.url, token or self.admin_token)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Agent:
    """`benchrun agent` for one runner, with its own image store."""

    def __init__(self, work: Path, server: JobServer, runner: str, key: str, *,
                 once: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.key_file = work / f"{runner}.key"
        self.key_file.write_text(key)
        self.key_file.chmod(0o600)
        self.store = work / f"store-{runner}"
        self.log = work / f"agent-{runner}.log"
        self.args = _benchrun() + ["agent", "--server", server.url, "--runner", runner,
                                   "--key-file", str(self.key_file), "--store", str(self.store),
                                   "--poll-timeout", "30", *extra] + (["--once"] if once else [])
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, env=dict(os.environ))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc


class Fleet:
    """A server, a project, a user token (self.user) and runners (agent()): what the end-to-end
    tests and bench/jobs_bench.py need."""

    def __init__(self, work: Path, db_url: str, **server_kw) -> None:
        self.work = work
        self.server = JobServer(work / "server", db_url, **server_kw)
        admin = self.server.client()
        self.project = admin.create_project(f"p-{uuid.uuid4().hex[:8]}")["id"]
        self.user = self.server.client(admin.create_token("user", projects=[self.project]))
        self.agents: list[Agent] = []
        self.admin = admin

    def agent(self, name: str, **kw) -> Agent:
        _, key = self.admin.create_runner(name, [self.project])
        a = Agent(self.work / "agents", self.server, name, key, **kw)
        self.agents.append(a)
        return a

    def close(self) -> None:
        for a in self.agents:
            a.stop(signal.SIGKILL)
        self.server.stop()


