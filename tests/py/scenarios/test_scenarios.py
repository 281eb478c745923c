"""The issue's scenario suite: each scenario builds a small busybox image and runs it on every
backend (the `backend` fixture: benchrun's pytest plugin, narrowed with --benchrun-backend),
checking results, limits and isolation from the workload's side."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import benchrun
from benchrun.testing import assert_exit, assert_ok, assert_stdout

pytestmark = [
    pytest.mark.root,
    pytest.mark.benchrun_backend("sandbox", "vm", "runc", "runsc", "crun"),
]

MiB = 1 << 20


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def no_process_with(marker: str) -> list[str]:
    """Command lines of live processes that contain ``marker`` (none should survive a run)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_basic_echo(run_image):
    r = assert_ok(run_image(["echo", "hello"]))
    assert_stdout(r, equals="hello\n")
    assert r.stderr == b""
    assert r.exit_code == 0 and r.signal == 0
    assert not (r.timed_out or r.oom_killed or r.stdout_truncated or r.stderr_truncated)


def test_result_fields(make_image, backend, store):
    info = make_image()
    before = time.time()
    r = benchrun.run(info.ref, ["true"], backend=backend, store=store, timeout=60)
    after = time.time()
    assert r.ok
    assert r.image_digest == info.manifest_digest
    assert r.backend == backend
    assert r.wall_time > 0
    assert r.cpu_user >= 0 and r.cpu_system >= 0 and r.peak_memory > 0
    assert before <= r.start_time <= r.end_time <= after
    assert set(r.phases) == {"pull", "prepare", "start", "run", "collect"}
    assert all(v >= 0 for v in r.phases.values())
    assert r.phases["pull"] == 0.0  # make_image pulled it already
    assert r.wall_time <= after - before
    assert r.outputs == {} and r.missing_outputs == {}


def test_pull_phase_counts_a_pull(make_image, backend, tmp_path):
    info = make_image()
    fresh_store = tmp_path / "fresh-store"
    r = benchrun.run(info.ref, ["true"], backend=backend, store=fresh_store, timeout=60)
    assert r.ok and r.phases["pull"] > 0
    assert r.image_digest == info.manifest_digest


def test_runs_proceed_in_parallel_threads(make_image, backend, store):
    # The native run releases the GIL: two 2-second runs from two threads overlap.
    info = make_image()
    results: list[benchrun.Result] = []

    def one() -> None:
        results.append(
            benchrun.run(info.ref, ["sleep", "2"], backend=backend, store=store, timeout=60)
        )

    threads = [threading.Thread(target=one) for _ in range(2)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert [r.ok for r in results] == [True, True]
    a, b = results
    # Both workloads were running at the same time (their start/end intervals overlap).
    assert a.start_time < b.end_time and b.start_time < a.end_time, (a.start_time, b.start_time)
    if backend == "sandbox":
        assert elapsed < 3.5, f"two runs took {elapsed:.1f}s: they did not overlap"
    # In a VM each run also boots a kernel, which under TCG is CPU-bound: on a 2-core host two
    # boots share the cores, so only the overlap above is asserted, not the total time.


def test_env_image_override_and_no_leak(run_image, monkeypatch):
    monkeypatch.setenv("BENCHRUN_TEST_LEAK_MARKER", "must-not-leak")
    monkeypatch.setenv("BENCHRUN_TEST_PASSED", "from-caller")
    r = run_image(
        ["env"],
        config={"Env": ["PATH=/bin", "FROM_IMAGE=image", "OVERRIDDEN=image"]},
        env=["OVERRIDDEN=cli", "EXTRA=x", "BENCHRUN_TEST_PASSED"],
    )
    assert r.ok, r.stderr
    env = dict(line.split("=", 1) for line in lines(r.stdout))
    assert env["FROM_IMAGE"] == "image"
    assert env["OVERRIDDEN"] == "cli"
    assert env["EXTRA"] == "x"
    assert env["BENCHRUN_TEST_PASSED"] == "from-caller"  # asked for by name, as docker -e K
    assert "BENCHRUN_TEST_LEAK_MARKER" not in env
    assert env["PATH"] == "/bin"
    # Nothing else of the runner's environment: only what the image, -e and Docker's defaults say.
    assert set(env) <= {
        "PATH",
        "FROM_IMAGE",
        "OVERRIDDEN",
        "EXTRA",
        "BENCHRUN_TEST_PASSED",
        "HOME",
        "HOSTNAME",
        "PWD",
        "SHLVL",
    }


def test_env_dict(run_image):
    r = run_image(["sh", "-c", 'echo "$A|$B"'], env={"A": "1", "B": "two words"})
    assert_stdout(assert_ok(r), equals="1|two words\n")


def test_workdir(run_image):
    r = run_image(["pwd"], config={"WorkingDir": "/work"})
    assert r.stdout == b"/work\n", r.stderr
    r = run_image(["pwd"], config={"WorkingDir": "/work"}, workdir="/tmp")
    assert r.stdout == b"/tmp\n", r.stderr
    r = run_image(["pwd"])
    assert r.stdout == b"/\n", r.stderr


def test_output_file_collected(run_image):
    r = run_image(
        ["sh", "-c", "echo '{\"score\": 42}' > /tmp/output.json"], outputs=["/tmp/output.json"]
    )
    assert_ok(r)
    assert r.outputs == {"/tmp/output.json": b'{"score": 42}\n'}
    assert r.missing_outputs == {}


def test_missing_output_reported_not_fatal(run_image):
    r = run_image(
        ["sh", "-c", "echo yes > /tmp/present"], outputs=["/tmp/present", "/tmp/absent.json"]
    )
    assert r.ok, r.stderr
    assert r.outputs == {"/tmp/present": b"yes\n"}
    assert set(r.missing_outputs) == {"/tmp/absent.json"}
    assert r.missing_outputs["/tmp/absent.json"]  # a reason is given


def test_exit_code_42(run_image):
    r = assert_exit(run_image(["sh", "-c", "exit 42"]), 42)
    assert r.signal == 0
    assert not r.ok and not r.timed_out


def test_timeout_kills_and_keeps_partial_output(run_image):
    marker = f"benchrun-timeout-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    r = run_image(["sh", "-c", f": {marker}; echo started; echo err >&2; sleep 3600"], timeout=5)
    elapsed = time.monotonic() - t0
    assert r.timed_out and not r.ok
    assert r.stdout == b"started\n" and r.stderr == b"err\n"
    assert 4.5 <= r.wall_time < 30
    assert elapsed < 30
    assert no_process_with(marker) == []


def test_large_output_intact(run_image):
    # 10 MiB of random bytes, base64-encoded (~13.8 MB with line breaks); its sha256 is computed
    # inside the sandbox and compared with what came back.
    r = run_image(
        [
            "sh",
            "-c",
            # head, not dd: gVisor's /dev/urandom returns short reads, which dd counts as blocks
            "head -c 10485760 /dev/urandom | base64 > /tmp/o"
            " && sha256sum /tmp/o >&2 && cat /tmp/o",
        ]
    )
    assert r.ok, r.stderr
    assert not r.stdout_truncated
    assert len(r.stdout) > 13_800_000
    assert r.stderr.split()[0].decode() == hashlib.sha256(r.stdout).hexdigest()


def test_writable_filesystem_and_cache_untouched(make_image, backend, store):
    info = make_image()
    script = (
        "echo data > /newfile && cat /newfile && mkdir -p /usr/local/x && touch /bin/added"
        " && rm /etc/group && echo tmp > /tmp/t && cat /tmp/t"
    )
    r = benchrun.run(info.ref, ["sh", "-c", script], backend=backend, store=store, timeout=60)
    assert r.ok, r.stderr
    assert r.stdout == b"data\ntmp\n"
    rootfs = benchrun.inspect(info.ref, store=store).rootfs
    assert rootfs is not None
    assert not (rootfs / "newfile").exists() and not (rootfs / "bin/added").exists()
    assert (rootfs / "etc/group").exists()
    # And the next run starts from the image again.
    r = benchrun.run(
        info.ref,
        ["sh", "-c", "test ! -e /newfile && test -e /etc/group"],
        backend=backend,
        store=store,
        timeout=60,
    )
    assert r.ok, r.stderr


def test_stderr_separate_from_stdout(run_image):
    r = run_image(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"])
    assert r.stdout == b"out1\nout2\n"
    assert r.stderr == b"err1\nerr2\n"


def test_vcpus_1(run_image):
    r = run_image(["nproc"], vcpus=1)
    assert r.stdout == b"1\n", r.stderr


def test_reboot_fails(run_image):
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text()
    r = run_image(["busybox", "reboot", "-f"])
    assert not r.ok
    assert r.exit_code != 0 or r.signal != 0
    # Still the same boot, and this process goes on.
    assert Path("/proc/sys/kernel/random/boot_id").read_text() == boot_id
    assert subprocess.run(["true"]).returncode == 0


def test_no_capabilities(run_image):
    r = run_image(["grep", "^Cap", "/proc/self/status"])
    assert r.ok, r.stderr
    caps = dict(line.split(":\t") for line in lines(r.stdout))
    assert int(caps["CapEff"], 16) == 0
    assert int(caps["CapPrm"], 16) == 0


def test_no_new_privs_and_seccomp(run_image, backend):
    r = run_image(["grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"])
    assert r.ok, r.stderr
    status = dict(line.split(":\t") for line in lines(r.stdout))
    # gVisor's /proc/self/status has no NoNewPrivs line (runsc sets it: tests/py/integration/
    # test_oci_backends.py checks the seccomp policy acts there).
    assert status.get("NoNewPrivs") == "1" or (backend == "runsc" and "NoNewPrivs" not in status)
    assert status["Seccomp"] == "2"  # a filter is installed


def test_no_network(run_image):
    r = run_image(["cat", "/proc/net/dev"])
    assert r.ok, r.stderr
    ifaces = [line.split(":", 1)[0].strip() for line in lines(r.stdout)[2:]]
    assert ifaces == ["lo"]
    t0 = time.monotonic()
    r = run_image(["wget", "-T", "2", "-q", "-O", "-", "http://10.255.255.1/"], timeout=30)
    assert not r.ok and not r.timed_out
    r = run_image(["sh", "-c", "echo x | nc -w 2 1.1.1.1 53"], timeout=30)
    assert not r.ok and not r.timed_out
    assert time.monotonic() - t0 < 60


def test_loopback_is_up(run_image):
    # A server and a client on 127.0.0.1 inside the run: the namespace has a working lo.
    script = (
        "nc -l -p 8123 > /tmp/got & sleep 0.5; echo ping | nc -w 2 127.0.0.1 8123; "
        "sleep 0.5; cat /tmp/got"
    )
    r = run_image(["sh", "-c", script], timeout=30)
    assert r.stdout.strip().endswith(b"ping"), (r.stdout, r.stderr)


def test_fork_bomb_contained(run_image, backend):
    marker = f"benchrun-forkbomb-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    r = run_image(
        ["sh", "-c", f": {marker}; bomb() {{ bomb | bomb & }}; bomb; sleep 3600"],
        # runsc: the host limit counts gVisor's own threads (its floor is 128); gVisor's tasks
        # are not host processes, the timeout ends the bomb there.
        pids_limit=256 if backend == "runsc" else 64,
        timeout=10,
    )
    assert time.monotonic() - t0 < 60
    assert not r.ok  # it ends by the timeout (or by failing to fork), not by succeeding
    # The host is unharmed and nothing of the run survives.
    assert subprocess.run(["true"]).returncode == 0
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert os.waitpid(pid, 0)[1] >> 8 == 7
    assert no_process_with(marker) == []


def test_memory_bomb_oom_killed(run_image):
    # awk doubles a string until the 32 MiB limit stops it; the pages are really touched.
    r = run_image(["awk", 'BEGIN { s = "x"; while (1) s = s s }'], memory=32 * MiB, timeout=60)
    assert r.oom_killed, (r.exit_code, r.signal, r.stderr)
    assert not r.ok and not r.timed_out
    assert r.peak_memory <= 33 * MiB


def test_yes_flood_capped(run_image):
    t0 = time.monotonic()
    r = run_image(["yes"], max_output_bytes=MiB, timeout=5)
    assert r.stdout_truncated and len(r.stdout) == MiB
    assert r.stdout[:4] == b"y\ny\n"
    assert r.timed_out and 4.5 <= r.wall_time < 30
    assert time.monotonic() - t0 < 30


def test_user_from_image_config(run_image):
    r = run_image(["sh", "-c", "id -u; id -g"], config={"User": "65534"})
    assert lines(r.stdout) == ["65534", "65534"], r.stderr
    r = run_image(["id", "-u"], config={"User": "nobody"})
    assert r.stdout == b"65534\n", r.stderr
    r = run_image(["id", "-u"], config={"User": "65534"}, user="root")
    assert r.stdout == b"0\n", r.stderr
    r = run_image(["sh", "-c", "id -u; id -g"], user="1234:5678")
    assert lines(r.stdout) == ["1234", "5678"], r.stderr


def test_entrypoint_cmd_combinations(make_image, backend, store):
    both = make_image({"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["cmd"]}).ref
    cmd_only = make_image({"Cmd": ["echo", "cmd-only"]}).ref
    cases = [
        (both, {}, b"ep cmd\n"),  # Entrypoint + Cmd
        (both, {"command": ["arg"]}, b"ep arg\n"),  # command replaces Cmd
        (both, {"entrypoint": ["/bin/echo", "new"]}, b"new\n"),  # entrypoint clears Cmd
        (both, {"entrypoint": ["/bin/echo"], "command": ["x", "y"]}, b"x y\n"),
        (both, {"entrypoint": [], "command": ["echo", "plain"]}, b"plain\n"),  # given, empty
        (both, {"entrypoint": "", "command": ["echo", "plain"]}, b"plain\n"),  # "" = []
        (cmd_only, {}, b"cmd-only\n"),
        (cmd_only, {"command": ["echo", "replaced"]}, b"replaced\n"),
        (cmd_only, {"entrypoint": ["/bin/echo", "e"]}, b"e\n"),
    ]
    for ref, kw, want in cases:
        r = benchrun.run(ref, backend=backend, store=store, timeout=60, **kw)
        assert (r.stdout, r.exit_code) == (want, 0), (kw, r.stderr)
    # Nothing to run at all is a clear error.
    with pytest.raises(benchrun.ConfigError, match="no command"):
        benchrun.run(both, entrypoint=[], backend=backend, store=store, timeout=60)


@pytest.mark.parametrize(
    "workdir, why",
    [
        ("/../../etc", "escapes the image root"),
        ("/proc/self/fd/7", "points into /proc"),
    ],
)
def test_hostile_workdir_refused(run_image, workdir, why):
    with pytest.raises(benchrun.ConfigError, match="working directory") as e:
        run_image(["pwd"], config={"WorkingDir": workdir})
    assert why in str(e.value) and "\n" not in str(e.value)


def test_output_symlink_stays_in_the_run(run_image):
    # A link that climbs out of the root resolves inside it: the host's file is never read.
    host = Path("/etc/os-release").read_bytes() if Path("/etc/os-release").exists() else None
    r = run_image(
        [
            "sh",
            "-c",
            "ln -s ../../../../../../etc/os-release /tmp/o; "
            "ln -s /proc/1/environ /tmp/p; echo image > /tmp/target; "
            "ln -s ../../../../tmp/target /tmp/q",
        ],
        outputs=["/tmp/o", "/tmp/p", "/tmp/q"],
    )
    assert r.ok, r.stderr
    assert "/tmp/o" in r.missing_outputs and r.outputs.get("/tmp/o") != host
    assert "/tmp/p" in r.missing_outputs
    assert r.outputs["/tmp/q"] == b"image\n"


def test_hostile_output_path_refused(run_image):
    with pytest.raises(benchrun.ConfigError, match="/proc"):
        run_image(["true"], outputs=["/proc/self/environ"])
