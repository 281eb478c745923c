"""benchrun as an ordinary user: a user namespace maps the caller to root, the run goes on without
a cgroup (saying so in its notices), and a requested limit fails clearly instead of being ignored.

The test runs as root (CI) and drops to nobody (65534) with util-linux's setpriv for each step;
the store, the image layout and the benchrun package must be readable by nobody, so everything
lives in a 0755 temp dir under /tmp (pytest's tmp_path is 0700)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import benchrun
from support.ocilayout import busybox_layer, write_layout

pytestmark = pytest.mark.root

NOBODY = 65534
SETPRIV = shutil.which("setpriv")

# Runs as nobody: pull into nobody's store, then run; prints one JSON document.
SCRIPT = r"""
import json, sys
import benchrun
from benchrun.errors import SandboxError

ref, store, mode = sys.argv[1], sys.argv[2], sys.argv[3]
benchrun.pull(ref, store=store)
try:
    if mode == "plain":
        r = benchrun.run(ref, ["sh", "-c", "id -u; echo hello > /tmp/x; cat /tmp/x"], store=store)
        notices = r.notices
        print(json.dumps({"exit_code": r.exit_code, "stdout": r.stdout.decode(),
                          "stderr": r.stderr.decode(), "notices": list(notices),
                          "cpu": r.cpu_user + r.cpu_system, "peak_memory": r.peak_memory}))
    elif mode == "timeout":  # a background child too: the whole pid namespace must die
        r = benchrun.run(ref, ["sh", "-c", "sleep 3599 & sleep 3598"], store=store, timeout=2)
        print(json.dumps({"timed_out": r.timed_out, "wall": r.wall_time}))
    elif mode == "memory":
        benchrun.run(ref, ["true"], store=store, memory="64m")
        print(json.dumps({"error": None}))
    elif mode == "instructions":  # the host's Valgrind bound in by an unprivileged user
        r = benchrun.run(ref, ["sh", "-c", "echo hi"], store=store, instructions=True)
        print(json.dumps({"exit_code": r.exit_code, "stdout": r.stdout.decode(),
                          "stderr": r.stderr.decode()[-500:],
                          "instructions": r.metrics["instructions"][0]}))
    elif mode == "user":
        benchrun.run(ref, ["true"], store=store, user="65534")
        print(json.dumps({"error": None}))
except SandboxError as e:
    print(json.dumps({"error": str(e), "stage": e.stage}))
"""


def userns_available() -> str | None:
    p = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if p.exists() and p.read_text().strip() == "0":
        return "kernel.unprivileged_userns_clone is 0"
    probe = subprocess.run(
        [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unprivileged user namespaces fail here: {probe.stderr.strip()}"
    return None


@pytest.fixture
def nobody_dir():
    if SETPRIV is None:
        pytest.skip("needs setpriv (util-linux)")
    reason = userns_available()
    if reason:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="benchrun-rootless-", dir="/tmp"))
    try:
        work.chmod(0o755)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def as_nobody(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True, text=True, env=env, cwd="/", timeout=120)


@pytest.fixture
def rootless(nobody_dir: Path):
    """(run(mode) -> dict): runs SCRIPT as nobody against nobody's own store."""
    layout = nobody_dir / "img"
    info = write_layout(layout, [busybox_layer()])
    store = nobody_dir / "store"
    store.mkdir()
    os.chown(store, NOBODY, NOBODY)
    for p in [layout, *layout.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)

    # The benchrun package must be importable by nobody: as installed if its path is readable
    # (the venv's python is /usr/bin/python3 underneath), else a copy in the 0755 temp dir.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(nobody_dir), "LANG": "C.UTF-8"}
    pkg_parent = Path(benchrun.__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(pkg_parent)
    probe = as_nobody([sys.executable, "-c", "import benchrun._core"], env)
    if probe.returncode != 0:
        copy = nobody_dir / "pkg"
        shutil.copytree(pkg_parent / "benchrun", copy / "benchrun")
        for p in [copy, *copy.rglob("*")]:
            executable = p.suffix == ".so" or p.name.startswith("benchrun-")
            p.chmod(0o755 if p.is_dir() or executable else 0o644)
        env["PYTHONPATH"] = str(copy)
        probe = as_nobody([sys.executable, "-c", "import benchrun._core"], env)
        if probe.returncode != 0:
            pytest.skip(f"benchrun cannot be imported as nobody: {probe.stderr.strip()[-300:]}")

    def run(mode: str) -> dict:
        done = as_nobody([sys.executable, "-c", SCRIPT, info.ref, str(store), mode], env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    run.store = store  # type: ignore[attr-defined]
    return run


def test_runs_as_an_ordinary_user_without_a_cgroup(rootless):
    out = rootless("plain")
    assert out["exit_code"] == 0, out
    assert out["stdout"] == "0\nhello\n", out  # root inside its user namespace
    assert any("no cgroup" in n and "delegate a cgroup v2 subtree" in n
               for n in out["notices"]), out["notices"]
    assert out["peak_memory"] > 0  # from wait4's ru_maxrss without a cgroup
    # Nothing of the runs is left, although overlayfs made its work dir mode 000.
    assert list((rootless.store / "runs").iterdir()) == []


def test_a_timeout_kills_the_whole_run_without_a_cgroup(rootless):
    out = rootless("timeout")
    assert out["timed_out"] and out["wall"] < 30, out
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) in (
        [b"sleep", b"3599"], [b"sleep", b"3598"])]
    assert left == []


def _cmdline(p: Path) -> list[bytes]:
    try:
        return (p / "cmdline").read_bytes().split(b"\0")[:2]
    except OSError:
        return []


def test_a_memory_limit_without_a_cgroup_is_a_clear_error(rootless):
    out = rootless("memory")
    assert out["error"] is not None, "the limit was silently ignored"
    assert out["stage"] == "cgroup"
    assert "memory limit needs a cgroup" in out["error"]
    assert "run as root" in out["error"] and "delegat" in out["error"]


def test_another_user_than_the_caller_is_refused(rootless):
    out = rootless("user")
    assert out["error"] == ("user 65534 is not available without root: only the calling user is "
                            "mapped (run as root for other users)"), out
    assert out["stage"] == "user namespace"


def test_instructions_without_root(rootless):
    if not os.path.exists("/usr/libexec/valgrind/callgrind-amd64-linux"):
        pytest.skip("needs Debian's valgrind on the host")
    out = rootless("instructions")
    assert out["exit_code"] == 0, out
    assert out["stdout"] == "hi\n"
    assert out["instructions"] > 0
