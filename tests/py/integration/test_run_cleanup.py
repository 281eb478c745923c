"""Nothing of a run survives: Ctrl-C stops it cleanly, and after the runner is SIGKILLed mid-run the
next benchrun start removes the leftovers (processes, cgroups, run dirs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import benchrun
from support.ocilayout import busybox_layer, write_layout
from support.registry import wait_for

pytestmark = pytest.mark.root

CHILD = """
import sys, benchrun
print("started", flush=True)
try:
    benchrun.run(sys.argv[1], ["sleep", sys.argv[3]], store=sys.argv[2])
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def sleepers(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


def run_cgroups(pid: int) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [d for d in root.glob(f"*/benchrun/run-{pid}-*")] + list(
        root.glob(f"benchrun/run-{pid}-*"))


@pytest.fixture
def image(tmp_path, store):
    info = write_layout(tmp_path / "img", [busybox_layer()])
    benchrun.pull(info.ref, store=store)
    return info.ref


def start(image, store, marker):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, image, str(store), marker],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    assert wait_for(lambda: sleepers(marker), timeout=20), "workload did not start"
    return proc


def test_ctrl_c_kills_the_run_and_cleans_up(image, store):
    marker = "3617"
    proc = start(image, store, marker)
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert time.monotonic() - t < 10
    assert proc.stdout.read().strip() == "interrupted"
    assert sleepers(marker) == []
    assert run_cgroups(proc.pid) == []
    assert list((store / "runs").iterdir()) == []


def test_runner_sigkilled_mid_run_is_cleaned_up_by_the_next_start(image, store):
    marker = "3619"
    proc = start(image, store, marker)
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    # The workload outlives its runner (it is in its own pid namespace and cgroup) ...
    assert sleepers(marker) and run_cgroups(proc.pid)
    assert [d.name for d in (store / "runs").iterdir() if d.name.startswith(f"run-{proc.pid}-")]
    # ... until the next benchrun run sweeps what a dead runner left.
    assert benchrun.run(image, ["true"], store=store).exit_code == 0
    assert wait_for(lambda: not sleepers(marker), timeout=10)
    assert run_cgroups(proc.pid) == []
    assert list((store / "runs").iterdir()) == []
    assert os.path.exists(store / "runs")
