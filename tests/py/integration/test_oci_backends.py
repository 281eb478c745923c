"""The OCI runtime backends (runc, runsc, crun, oci --runtime) through the sandbox's checks: exit
codes, stdout/stderr, env/cwd/user, limits, outputs, timeout, no network, seccomp applied; then
nothing left after a timeout or a SIGKILLed runner (no container, mount, cgroup or state dir).
Each backend this host cannot run is skipped with the reason benchrun gives (crun on a cgroup v1
hybrid host). The scenario suite (tests/py/scenarios) also runs on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import benchrun
from benchrun import _core
from benchrun.options import backend_unavailable
from support.ocilayout import ImageInfo, Layer, busybox_layer, write_layout
from support.registry import wait_for

pytestmark = pytest.mark.root


def _param(name: str):
    why = backend_unavailable(name)
    return pytest.param(name, id=name, marks=pytest.mark.skipif(bool(why), reason=why or "-"))


OCI = [_param(b) for b in ("runc", "runsc", "crun")]

# Prints "<syscall> <errno>" for calls the seccomp policy denies (0 = it went through).
PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  errno = 0; int r = unshare(CLONE_NEWUTS); printf("unshare %d\n", r < 0 ? errno : 0);
  errno = 0; r = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); printf("vsock %d\n", r < 0 ? errno : 0);
  errno = 0; r = personality(0x0400000 /* READ_IMPLIES_EXEC */);
  printf("personality %d\n", r < 0 ? errno : 0);
  errno = 0; r = socket(AF_UNIX, SOCK_STREAM, 0); printf("unix %d\n", r < 0 ? errno : 0);
  /* EBADF without the policy (Linux and gVisor check the fd first); EPERM from the policy */
  errno = 0; r = setns(-1, 0); printf("setns %d\n", r < 0 ? errno : 0);
  return 0;
}
"""


@pytest.fixture(scope="module")
def oci_image(tmp_path_factory: pytest.TempPathFactory) -> ImageInfo:
    work = tmp_path_factory.mktemp("oci-image")
    src, exe = work / "probe.c", work / "probe"
    src.write_text(PROBE)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    app = Layer("gzip").dir("app", mode=0o777).file("app/probe", exe.read_bytes(), mode=0o755)
    config = {"Env": ["PATH=/bin:/app", "GREETING=hi"], "WorkingDir": "/", "Cmd": ["sh"]}
    return write_layout(work / "layout", [busybox_layer(), app], config=config)


@pytest.fixture(scope="module")
def oci_store(tmp_path_factory: pytest.TempPathFactory, oci_image: ImageInfo) -> Path:
    store = tmp_path_factory.mktemp("oci-store")
    benchrun.pull(oci_image.ref, store=store)
    return store


def run(image: ImageInfo, store: Path, backend: str, argv: list[str], **kw) -> benchrun.Result:
    kw.setdefault("timeout", 60)
    return benchrun.run(image.ref, argv, backend=backend, store=store, pull="never", **kw)


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]


def run_cgroups(pid: int) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return list(root.glob(f"*/benchrun/run-{pid}-*")) + list(root.glob(f"benchrun/run-{pid}-*"))


def assert_nothing_left(store: Path, runner_pid: int) -> None:
    runs = store / "runs"
    assert mounts_under(runs) == []
    assert run_cgroups(runner_pid) == []
    assert not runs.exists() or list(runs.iterdir()) == []


@pytest.mark.parametrize("backend", OCI)
def test_same_checks_as_the_sandbox(backend, oci_image, oci_store):
    script = (
        "echo out; echo err >&2; id -u; id -g; pwd; echo $FOO $GREETING;"
        " echo data > /tmp/out.txt; echo keep > /app/kept;"
        " tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ';"
        " wget -T 2 -q -O - http://10.255.255.1/ >/dev/null 2>&1 && echo NET || echo nonet;"
        " probe; exit 3"
    )
    r = run(
        oci_image,
        oci_store,
        backend,
        ["sh", "-c", script],
        env=["FOO=bar"],
        workdir="/app",
        user="65534:65534",
        outputs=["/tmp/out.txt", "/app/kept", "/missing"],
    )
    assert r.exit_code == 3 and r.signal == 0, r.stderr
    assert r.stderr == b"err\n"
    out = r.stdout.decode().split("\n")
    assert out[:5] == ["out", "65534", "65534", "/app", "bar hi"], out
    assert out[5] == "lo" and out[6] == "nonet", out  # loopback only
    probe = dict(line.split() for line in out[7:] if line)
    # gVisor refuses vsock (EPERM) and that personality (EINVAL) itself, before the policy.
    other = {"vsock": "1", "personality": "22"} if backend == "runsc" else {}
    want = {"unshare": "1", "vsock": "97", "personality": "1", "unix": "0", "setns": "1"}
    assert all(probe[k] in (v, other.get(k, v)) for k, v in want.items()), probe
    assert r.outputs["/tmp/out.txt"] == b"data\n"  # /tmp is a tmpfs: read back after exit
    assert r.outputs["/app/kept"] == b"keep\n"
    assert "/missing" in r.missing_outputs
    assert r.facts["oci_runtime"] == backend and r.facts["oci_runtime_version"]
    if backend == "runsc":
        assert r.facts["runsc_platform"] in ("systrap", "ptrace", "kvm")
    assert r.metrics["wall_time"].value > 0 and r.peak_memory > 0
    assert r.backend == backend

    # Limits: pids (the 9th process fails to fork; under runsc the limit counts gVisor's own
    # host threads, so a small one is refused) and memory (an OOM kill, counted).
    if backend == "runsc":
        with pytest.raises(benchrun.ConfigError, match="gVisor's own host threads"):
            run(oci_image, oci_store, backend, ["true"], pids_limit=8)
    else:
        r = run(
            oci_image,
            oci_store,
            backend,
            [
                "sh",
                "-c",
                "n=0; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do"
                " (sleep 2 &) 2>/dev/null && n=$((n+1)); done; echo $n",
            ],
            pids_limit=8,
        )
        assert r.exit_code == 0 and 0 < int(r.stdout) < 12, (r.stdout, r.stderr)
        assert r.limits["pids"] == 8
    r = run(
        oci_image,
        oci_store,
        backend,
        ["busybox", "awk", 'BEGIN { s = "x"; while (1) s = s s }'],
        memory=32 << 20,
    )
    assert r.oom_killed and r.signal == signal.SIGKILL, (r.exit_code, r.signal, r.stderr)

    # Timeout: killed at the deadline, and nothing of the run is left.
    r = run(oci_image, oci_store, backend, ["sleep", "30"], timeout=1)
    assert r.timed_out and r.metrics["wall_time"].value < 15
    assert_nothing_left(oci_store, os.getpid())


CHILD = """
import sys, benchrun
print("started", flush=True)
benchrun.run(sys.argv[1], ["sleep", "3621"], store=sys.argv[2], backend=sys.argv[3], pull="never")
"""


def sleepers() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "cmdline").read_bytes() == b"sleep\x003621\x00":
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("backend", OCI)
def test_sigkilled_runner_leaves_nothing_after_the_sweep(backend, oci_image, oci_store):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, oci_image.ref, str(oci_store), backend],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        started = wait_for(
            lambda: list((oci_store / "runs").glob("run-*/container.pid")), timeout=30
        )
        assert started, "container did not start"
        if backend != "runsc":  # gVisor's processes are not host processes
            assert wait_for(lambda: sleepers(), timeout=20)
    finally:
        proc.kill()
        proc.wait()
    run_dir = next((oci_store / "runs").iterdir())
    assert mounts_under(run_dir), "the rootfs overlay should outlive the killed runner"
    assert (
        _core.cleanup_leftovers(
            store=str(oci_store), cgroup_root="/sys/fs/cgroup", cgroup_parent="benchrun"
        )
        >= 1
    )
    assert sleepers() == []
    assert_nothing_left(oci_store, proc.pid)
    # No container process of the runtime is left either (runsc's sandbox and gofer).
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _cmd_mentions(p, run_dir.name)]


def _cmd_mentions(cmdline: Path, text: str) -> bool:
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False


def test_runtime_errors_say_what_to_do(oci_image, oci_store):
    with pytest.raises(benchrun.ConfigError, match="needs --runtime"):
        run(oci_image, oci_store, "oci", ["true"])
    with pytest.raises(benchrun.RuntimeUnavailable, match="not an executable") as e:
        run(oci_image, oci_store, "oci", ["true"], runtime="/nonexistent/runtime")
    assert e.value.reason == "not-installed"
    with pytest.raises(benchrun.RuntimeUnavailable, match="not installed") as e:
        run(oci_image, oci_store, "oci", ["true"], runtime="no-such-runtime-x")
    with pytest.raises(benchrun.ConfigError, match="applies to backend 'runsc'"):
        run(oci_image, oci_store, "runc", ["true"], runsc_platform="ptrace")
    with pytest.raises(benchrun.ConfigError, match="disk"):
        run(oci_image, oci_store, "runc", ["true"], disk=64 << 20)
    if not backend_unavailable("runc"):
        # Any OCI runtime by path: runc's own binary through --backend oci.
        r = run(oci_image, oci_store, "oci", ["sh", "-c", "exit 5"], runtime="runc")
        assert r.exit_code == 5 and r.facts["oci_runtime_path"].endswith("/runc")
    if not backend_unavailable("runsc"):
        with open("/proc/cpuinfo") as f:
            hw = any(w in f.read().split() for w in ("vmx", "svm"))
        if not hw:
            with pytest.raises(benchrun.RuntimeUnavailable, match="kvm") as e:
                run(oci_image, oci_store, "runsc", ["true"], runsc_platform="kvm")
            assert e.value.reason == "unsupported-host"
    if Path("/sys/fs/cgroup/unified").is_dir() and os.path.ismount("/sys/fs/cgroup/unified"):
        with pytest.raises(benchrun.RuntimeUnavailable, match="hybrid") as e:
            run(oci_image, oci_store, "crun", ["true"])
        assert e.value.reason in ("unsupported-host", "not-installed")
