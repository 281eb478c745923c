"""benchrun host tune/check/reset on this machine, for real: ASLR, THP, perf_event_max_sample_rate
and IRQ affinity are changed, `check` says tuned, a sandbox run attests it, `reset` restores every
original value. The host is shared: a finally block resets, and writes back any value that still
differs from the snapshot taken first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import benchrun
from benchrun.host import partition
from benchrun.host import catalogue
from benchrun.host.attestation import forget
from benchrun.host.settings import Root
from benchrun.host.tune import reset, tune

pytestmark = pytest.mark.root

REAL = Root("/")
NEEDED = (
    "proc/sys/kernel/randomize_va_space",
    "sys/kernel/mm/transparent_hugepage/enabled",
    "proc/sys/kernel/perf_event_max_sample_rate",
)


def settable_values() -> dict[str, str]:
    """{path: current value} of every setting tune may write on this host."""
    _, settings = catalogue(REAL)
    return {s.path: s.current for s in settings if s.settable and s.current is not None}


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [p for p in NEEDED if not REAL.exists(p)]
    if missing or len(os.sched_getaffinity(0)) < 2:
        pytest.skip(f"host lacks {missing or 'a second CPU'}")
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(tmp_path / "state"))
    # tune makes a CPU partition of the runs' parent cgroup: a parent of this test's own.
    monkeypatch.setenv("BENCHRUN_CGROUP_PARENT", f"benchrun-tunetest-{os.getpid()}")
    return tmp_path / "state"


def restore(original: dict[str, str], journal: Path) -> None:
    try:
        reset("/", journal)
    finally:
        for path, value in original.items():  # belt and braces: the host is shared
            if settable_values().get(path) != value:
                try:
                    REAL.write(path, value)
                except OSError:
                    pass


def test_tune_check_run_reset_for_real(state: Path, busybox_image, store):
    original = settable_values()
    journal = state / "tune-journal.json"
    assert "proc/sys/kernel/randomize_va_space" in original
    try:
        report = tune("/")
        assert report.cpus and report.housekeeping and journal.exists()
        assert REAL.read("proc/sys/kernel/randomize_va_space") == "0"
        assert "[never]" in REAL.read("sys/kernel/mm/transparent_hugepage/enabled")
        assert REAL.read("proc/sys/kernel/perf_event_max_sample_rate") == "1"
        house = benchrun.host.format_cpus(report.housekeeping)
        refused = {f["path"] for f in report.failed}
        irqs = [p for p in original if p.endswith("smp_affinity_list")]
        moved = [p for p in irqs if "/" + p not in refused]
        assert moved, report.failed  # at least one IRQ moves on any host
        for p in moved:
            assert set(benchrun.host.parse_cpus(REAL.read(p))) <= set(report.housekeeping), p
        # check: every settable setting is as recommended now (refused IRQs are not settable).
        p = subprocess.run(
            [sys.executable, "-m", "benchrun.cli", "host", "check", "--json"],
            capture_output=True, text=True, timeout=120, env=os.environ,
        )  # fmt: skip
        doc = json.loads(p.stdout)
        assert p.returncode == 0 and doc["tuned"], doc["differs"]
        assert doc["housekeeping"] == list(report.housekeeping)
        # A real sandbox run attests the tuned host.
        forget()
        r = benchrun.run(busybox_image.ref, ["true"], store=store)
        assert r.ok
        hs = r.facts["host_state"]
        assert hs["tuned"] is True and hs["cpus"] == list(report.cpus) and hs["journal"] is True
        assert json.loads(json.dumps(r.to_json()))["facts"]["host_state"] == hs
        assert house  # housekeeping CPUs named
        # The benchmark CPUs are the runs' partition: a run asking for a CPU gets one of them.
        assert report.partition and report.partition["cpus"] == benchrun.host.format_cpus(
            report.cpus
        ), report.partition
        assert partition.status().exists
        r = benchrun.run(busybox_image.ref, ["cat /proc/self/status"], store=store, vcpus=1)
        allowed = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("Cpus_allowed_list")]
        assert allowed, (r.exit_code, r.stdout[-300:], r.stderr[-500:], r.notices)
        assert set(benchrun.host.parse_cpus(allowed[0].split()[-1])) <= set(report.cpus), allowed
        done = reset("/", journal)
        assert done is not None and not journal.exists()
        assert not partition.status().exists
        assert settable_values() == original
        forget()
        r = benchrun.run(busybox_image.ref, ["true"], store=store)
        assert r.facts["host_state"]["journal"] is False
    finally:
        restore(original, journal)
        partition.remove()
    assert settable_values() == original


def test_agent_tune_wraps_the_agent_and_resets(state: Path, monkeypatch):
    """`benchrun agent --tune`: tuned while the agent loop runs, reset when it returns."""
    import benchrun.agent as agent_pkg
    from benchrun.agent import make_config, run_agent
    from benchrun.host import attest

    original = settable_values()
    journal = state / "tune-journal.json"
    seen = {}

    async def fake_loop(config, handle_signals=True):
        seen.update(attest("/"))
        return 0

    monkeypatch.setattr(agent_pkg, "run_agent_async", fake_loop)
    cfg = make_config("http://127.0.0.1:9", "box1", "key", tune=True)
    try:
        assert run_agent(cfg, handle_signals=False) == 0
        assert seen["tuned"] is True and seen["journal"] is True
        assert not journal.exists()
        assert settable_values() == original
    finally:
        restore(original, journal)


def test_campaign_runs_record_the_host_state_and_report_shows_it(
    tmp_path: Path, store, busybox_image, monkeypatch
):
    """Untuned here (the host is shared): the state travels Result -> runs.host -> report."""
    from benchrun.campaign import Campaign, Variant
    from benchrun.report import host_lines
    from benchrun.results import load

    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(tmp_path / "state"))
    forget()
    bmf = '{"b":{"latency":{"value":1.5}}}'
    c = Campaign(
        "hs",
        [Variant("bmf", busybox_image.ref, ["echo", bmf], timeout=60)],
        repetitions=2,
        store=str(tmp_path / "r.db"),
    )
    res = c.run(progress=False, image_store=store)
    assert res.done == res.planned and res.failed == 0
    df = load(res.store)
    expected = benchrun.host.attest("/", state=tmp_path / "state")
    assert set(df["host_state_tuned"]) == {expected["tuned"]}
    (line,) = host_lines(df)
    if expected["tuned"]:
        assert line.startswith("host: tuned")
    else:
        assert line == "host: NOT tuned: " + ", ".join(expected["differs"])
