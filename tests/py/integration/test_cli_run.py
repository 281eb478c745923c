"""`benchrun run` end to end through a subprocess: output, exit codes, --json, options, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

root = pytest.mark.root


def benchrun(*args: str, store, env_extra=None, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, BENCHRUN_CACHE=str(store), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "benchrun.cli", *args], capture_output=True, env=env, timeout=timeout
    )


# busybox_image (tests/py/conftest.py): Entrypoint ["/bin/sh", "-c"], Cmd ["cat /app/hello.txt"],
# Env GREETING=hi, WorkingDir /app, User 65534. A command is therefore one shell string.


@root
def test_run_prints_the_workload_output(busybox_image, store):
    p = benchrun("run", busybox_image.ref, store=store)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"hello from benchrun\n", b"")
    p = benchrun("run", busybox_image.ref, "echo out; echo err >&2; pwd; id -u", store=store)
    assert p.returncode == 0
    assert p.stdout == b"out\n/app\n65534\n" and p.stderr == b"err\n"


@root
def test_run_exit_code_propagated(busybox_image, store):
    p = benchrun("run", busybox_image.ref, "echo before; exit 42", store=store)
    assert p.returncode == 42 and p.stdout == b"before\n"
    assert p.stderr == b""  # a plain non-zero exit is not "notable": no summary line


@root
def test_run_json_document(busybox_image, store):
    p = benchrun("run", "--json", busybox_image.ref, "echo hi; echo there >&2", store=store)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # stdout is the document and nothing else
    assert doc["schema"] == 3 and doc["backend"] == "sandbox" and doc["ok"] is True
    assert doc["image_digest"] == busybox_image.manifest_digest
    assert doc["exit_code"] == 0 and doc["signal"] == 0
    assert doc["stdout"] == "hi\n" and doc["stderr"] == "there\n"
    assert doc["stdout_base64"] is None and doc["stderr_base64"] is None
    assert set(doc["phases"]) == {"pull", "prepare", "start", "run", "collect"}
    assert doc["phases"]["pull"] > 0  # the store was empty: this run pulled the image
    assert doc["wall_time"] > 0 and doc["peak_memory"] > 0
    # Non-UTF-8 output comes back exactly through the base64 variant (and only through it).
    p = benchrun("run", "--json", busybox_image.ref, r"printf '\377\376ok'", store=store)
    doc = json.loads(p.stdout)
    assert doc["stdout_base64"] == "//5vaw==" and doc["stdout"] is None
    assert doc["phases"]["pull"] == 0.0  # cached now


@root
def test_run_wall_time_covers_the_whole_workload(busybox_image, store):
    # The clock starts before the workload is released, never after its exec was confirmed: a
    # workload that sleeps 0.2 s has a wall time of at least 0.2 s, every time.
    p = benchrun("run", "--json", "--iterations", "5", busybox_image.ref, "sleep 0.2", store=store)
    assert p.returncode == 0, p.stderr
    walls = [i["wall_time"] for i in json.loads(p.stdout)["iterations"]]
    assert len(walls) == 5 and all(0.2 <= w < 5 for w in walls), walls


@root
def test_run_timeout_exit_124(busybox_image, store):
    t0 = time.monotonic()
    p = benchrun("run", "--timeout", "2", busybox_image.ref, "echo started; sleep 60", store=store)
    assert p.returncode == 124
    assert p.stdout == b"started\n"
    assert b"timed out" in p.stderr and p.stderr.count(b"\n") == 1
    assert time.monotonic() - t0 < 30


@root
def test_run_env_options(busybox_image, store, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nFROM_FILE=file value\nOVERRIDDEN=file\nPASSED_BY_NAME\n")
    p = benchrun(
        "run",
        "--env-file",
        str(env_file),
        "-e",
        "OVERRIDDEN=cli",
        "-e",
        "GREETING=yo",
        "-e",
        "FROM_CALLER",
        busybox_image.ref,
        'echo "$GREETING|$FROM_FILE|$OVERRIDDEN|$FROM_CALLER|$PASSED_BY_NAME|$NOT_PASSED"',
        store=store,
        env_extra={"FROM_CALLER": "caller", "PASSED_BY_NAME": "named", "NOT_PASSED": "leak"},
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"yo|file value|cli|caller|named|\n"


@root
def test_run_workdir_user_entrypoint_image_options(busybox_image, store):
    p = benchrun("run", "-w", "/tmp", "-u", "0", busybox_image.ref, "pwd; id -u", store=store)
    assert p.stdout == b"/tmp\n0\n", p.stderr
    # --entrypoint "" drops the image's sh -c: the command runs as is.
    p = benchrun("run", "--entrypoint", "", busybox_image.ref, "echo", "plain", "-n", store=store)
    assert p.stdout == b"plain -n\n", p.stderr
    p = benchrun("run", "--entrypoint", "/bin/echo", busybox_image.ref, "a", "b", store=store)
    assert p.stdout == b"a b\n", p.stderr
    # --image: every positional is the command.
    p = benchrun("run", "--image", busybox_image.ref, "echo via --image", store=store)
    assert p.stdout == b"via --image\n", p.stderr


@root
def test_run_output_files_in_json(busybox_image, store):
    p = benchrun(
        "run",
        "--json",
        "--output",
        "/tmp/r.json",
        "--output",
        "/tmp/missing",
        busybox_image.ref,
        "echo '{\"score\": 1}' > /tmp/r.json",
        store=store,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["outputs"] == {"/tmp/r.json": '{"score": 1}\n'}
    assert doc["outputs_base64"] == {}
    assert list(doc["missing_outputs"]) == ["/tmp/missing"]


@root
def test_run_iterations(busybox_image, store):
    p = benchrun("run", "--json", "--iterations", "3", busybox_image.ref, "echo x", store=store)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == 3 and len(doc["iterations"]) == 3
    assert {i["image_digest"] for i in doc["iterations"]} == {busybox_image.manifest_digest}
    assert [i["stdout"] for i in doc["iterations"]] == ["x\n"] * 3
    assert [i["phases"]["pull"] > 0 for i in doc["iterations"]] == [True, False, False]
    # Without --json each iteration's output is written; the exit code is the last one's.
    p = benchrun("run", "-v", "--iterations", "2", busybox_image.ref, "echo x; exit 3", store=store)
    assert p.returncode == 3 and p.stdout == b"x\nx\n"
    summary = p.stderr.decode().splitlines()
    assert (
        len(summary) == 2 and summary[0].startswith("benchrun: [1/2] ") and "exit 3" in summary[0]
    )


@root
def test_run_ctrl_c_stops_the_run_and_cleans_up(busybox_image, store):
    marker = f"benchrun-ctrl-c-{uuid.uuid4().hex}"
    benchrun("pull", busybox_image.ref, store=store)
    env = dict(os.environ, BENCHRUN_CACHE=str(store))
    p = subprocess.Popen(
        [sys.executable, "-m", "benchrun.cli", "run", busybox_image.ref, f": {marker}; sleep 20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(2)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=90)
        elapsed = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 130 and b"interrupted" in err
    leftovers = [
        pid for pid in os.listdir("/proc") if pid.isdigit() and marker.encode() in _cmdline(pid)
    ]
    assert leftovers == []
    assert elapsed < 10, f"benchrun took {elapsed:.1f}s to stop after Ctrl-C"


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@root
def test_run_hostile_workdir_exit_125(busybox_image, store):
    p = benchrun("run", "-w", "/proc/self/fd", busybox_image.ref, "pwd", store=store)
    assert p.returncode == 125
    assert p.stderr.startswith(b"benchrun: error: ") and p.stderr.count(b"\n") == 1
    assert b"/proc" in p.stderr and p.stdout == b""


def test_run_errors_exit_125_one_line(store, tmp_path):
    p = benchrun("run", f"oci:{tmp_path}/nope", "true", store=store)
    assert p.returncode == 125
    assert p.stderr.startswith(b"benchrun: error: ") and p.stderr.count(b"\n") == 1
    assert b"Traceback" not in p.stderr
    # An option value that names a missing file is a usage error (nothing was pulled or run).
    p = benchrun("run", "--backend", "vm", "--kernel", str(tmp_path / "nokernel"), "busybox",
                 store=store)
    assert p.returncode == 2 and b"--kernel: kernel" in p.stderr
    assert b"nokernel': no such file" in p.stderr and b"Traceback" not in p.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ((), b"IMAGE is required"),
        (("--memory", "12x", "img"), b"--memory"),
        (("--memory", "512", "img"), b"minimum is 6m"),
        (("--timeout", "0", "img"), b"--timeout"),
        (("--vcpus", "0", "img"), b"--vcpus"),
        (("--vcpus", "100000", "img"), b"CPUs are available"),
        (("--iterations", "0", "img"), b"--iterations"),
        (("--env-file", "/nonexistent/env", "img"), b"/nonexistent/env"),
        (("--output", "relative/path", "img"), b"absolute"),
        (("--network", "host", "img"), b"--network"),
        (("--backend", "qemu", "img"), b"--backend"),
    ],
)
def test_run_usage_errors_exit_2_before_any_work(store, args, message):
    p = benchrun("run", *args, store=store)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert not store.exists()  # nothing was pulled, nothing was created


@root
def test_run_imports_no_analysis_or_server_libraries(busybox_image, store):
    """`benchrun run` end to end (a pull, then a warm run) loads none of the heavy libraries
    (tests/py/unit/test_cli_imports.py checks parsing and --help)."""
    heavy = ("pandas", "numpy", "matplotlib", "scipy", "seaborn", "aiohttp", "asyncpg", "requests",
             "rich", "benchrun.report", "benchrun.campaign", "benchrun.agent", "benchrun.server",
             "benchrun.client")
    env = dict(os.environ, BENCHRUN_CACHE=str(store))
    for _ in range(2):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "benchrun.cli", "run",
                            busybox_image.ref, "echo ok"], capture_output=True, env=env,
                           timeout=120)
        assert (p.returncode, p.stdout) == (0, b"ok\n"), p.stderr[-2000:]
        imported = {line.rsplit("|", 1)[1].strip() for line in p.stderr.decode().splitlines()
                    if line.startswith("import time:") and line.count("|") == 2}
        assert "benchrun.cli.main" in imported and "benchrun._core" in imported
        assert sorted(m for m in imported
                      if any(m == h or m.startswith(h + ".") for h in heavy)) == []
