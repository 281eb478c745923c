"""A throwaway PostgreSQL cluster for tests: Debian's postgresql 15 binaries, a fresh data dir,
trust auth, 127.0.0.1 on a free port plus a unix socket in the work dir, fsync off.

The postmaster is this process's child (not daemonized by pg_ctl), started with PR_SET_PDEATHSIG so
the kernel kills it if the test process dies without running teardown; backends exit on their own
once the postmaster is gone. stop() is an immediate shutdown (SIGQUIT, as `pg_ctl stop -m
immediate`), then kill, then rm -r. As root, initdb and postgres run as the `postgres` user (initdb
refuses root), so the work dir is a fresh directory that user owns.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

PG_BIN = Path(os.environ.get("BENCHRUN_PG_BIN", "/usr/lib/postgresql/15/bin"))
PR_SET_PDEATHSIG = 1


def available() -> Optional[str]:
    """None if a cluster can be started here, else the reason it cannot."""
    for tool in ("initdb", "pg_ctl", "postgres", "createdb"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child after the uid change (which would clear the setting), before exec.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class PostgresServer:
    def __init__(self, work_dir: Optional[Path] = None) -> None:
        """work_dir: where the cluster lives (created; removed by stop()). As root it must be
        reachable by the postgres user; by default a fresh directory under the system temp dir."""
        reason = available()
        if reason:
            raise RuntimeError(reason)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._user: dict = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        else:
            self._user = {}
        if work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="benchrun-pg-"))
        else:
            self.work_dir = Path(work_dir)
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data = self.work_dir / "data"
        self.sockets = self.work_dir / "sockets"
        self.log = self.work_dir / "postgres.log"
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.dsn = ""
        atexit.register(self.stop)
        try:
            self.sockets.mkdir()
            if self._user:
                for p in (self.work_dir, self.sockets):
                    os.chown(p, self._user["user"], self._user["group"])
                    os.chmod(p, 0o700)
            self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                     "--locale=C", "--no-sync", "--no-instructions")
            self._start()
        except BaseException:
            self.stop()
            raise

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        r = subprocess.run([str(PG_BIN / tool), *args], cwd=self.work_dir, capture_output=True,
                           text=True, timeout=timeout, **self._user)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stderr.strip() or r.stdout}")

    def _start(self) -> None:
        for _ in range(5):  # the free port may be taken between probing and binding
            self.port = _free_port()
            log = open(self.log, "ab")
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.sockets}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
                cwd=self.work_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, **self._user)
            log.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        pass
                    # Line 8 of postmaster.pid is the status: "ready" once it accepts sessions.
                    if "ready" in (self.data / "postmaster.pid").read_text():
                        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            self._kill()
        raise RuntimeError(f"postgres did not start: {self.log.read_text()[-2000:]}")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # What `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster: backends quit at
            # once, no checkpoint), but waited for on our child: pg_ctl -w polls the pid file and
            # counts our unreaped (zombie) postmaster as alive.
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.stop)
