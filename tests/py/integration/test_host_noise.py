"""`benchrun host noise` for real on this machine: the calibration workloads run in the sandbox
for a few seconds and the stored figures are sane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchrun import noise

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_host_noise_measures_and_stores(tmp_path: Path, store: Path):
    env = {**os.environ, "BENCHRUN_HOST_STATE": str(tmp_path / "state")}
    cpu = min(os.sched_getaffinity(0))
    p = subprocess.run(
        [sys.executable, "-m", "benchrun.cli", "host", "noise", "--json", "--duration", "3",
         "--cpus", str(cpu), "--store", str(store)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    printed = json.loads(p.stdout)
    stored = noise.load(str(tmp_path / "state" / "noise.json"))
    assert printed == stored
    assert stored["cpus"] == str(cpu) and stored["duration_s"] == 3.0
    assert set(stored["workloads"]) == {"cpu", "mem", "syscall"}
    for name, w in stored["workloads"].items():
        # Structure, not speed: the repetition count and duration depend on how loaded the host
        # is (CI measured a mem repetition 8x shorter than its sizing run under contention).
        assert w["n"] >= 2, name
        assert w["median_s"] > 0, name
        assert w["cv"] >= 0 and w["spread"] >= 0, name
        m = w["mdc"]
        assert m["10"] >= m["30"] >= m["100"] >= 0, name
    assert stored["score"] >= 0


def test_host_noise_table_and_bad_cpus(tmp_path: Path, store: Path):
    env = {**os.environ, "BENCHRUN_HOST_STATE": str(tmp_path / "state")}
    cli = [sys.executable, "-m", "benchrun.cli", "host", "noise", "--store", str(store)]
    p = subprocess.run(cli + ["--duration", "1", "--workloads", "cpu", "--no-save"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "cpu" in p.stdout and "score (RMS of the CVs)" in p.stdout
    assert not (tmp_path / "state").exists()
    p = subprocess.run(cli + ["--cpus", "4096"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 125 and "not available to benchrun" in p.stderr
