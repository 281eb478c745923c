"""benchrun.host against fake sysfs/procfs trees (tests/py/support/fakehost.py): the settings
catalogue for Intel and AMD frequency drivers, SMT, cpuidle and IRQs; tune then reset restores
every file byte for byte; a tune or reset SIGKILLed after any number of writes is undone by the
next reset; the journal lock; attest(); and the `benchrun host` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchrun.cli import main as cli
from benchrun.errors import ConfigError, SysError
from benchrun.host import attest, catalogue
from benchrun.host import journal as jr
from benchrun.host.settings import format_cpus, parse_cpus, plan_cpus
from benchrun.host.tune import reset, tune, tuned
from support.fakehost import FakeKernel, build, snapshot

TESTS_PY = Path(__file__).resolve().parents[1]


def by_name(settings, name):
    return [s for s in settings if s.name == name]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tune-journal.json"


def test_cpu_lists():
    assert parse_cpus("0-3,5") == {0, 1, 2, 3, 5}
    assert format_cpus({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    for bad in ("a", "3-1", "1-x", "-1"):
        with pytest.raises(ConfigError):
            parse_cpus(bad)


def test_intel_pstate_catalogue(tmp_path: Path):
    root = build(tmp_path / "root", driver="intel_pstate")
    plan, settings = catalogue(root)
    assert plan.cpus == (1, 2, 3) and plan.housekeeping == (0,)
    names = {s.name for s in settings if s.differs}
    assert names == {
        "no_turbo", "governor", "epp", "min_freq", "cpuidle", "aslr", "thp_enabled",
        "thp_defrag", "perf_event_max_sample_rate", "nmi_watchdog", "numa_balancing",
        "clocksource", "irq_default_affinity", "irq_affinity",
    }  # fmt: skip
    assert [s.target for s in by_name(settings, "governor")] == ["cpu1", "cpu2", "cpu3"]
    # POLL (latency 0) is not a C-state: only C1 and C6 are to be disabled.
    assert len(by_name(settings, "cpuidle")) == 6
    thp = by_name(settings, "thp_enabled")[0]
    assert (thp.current, thp.recommended) == ("madvise", "never")
    smt = by_name(settings, "smt")[0]
    assert smt.status == "info" and smt.current == "notsupported"
    for name in ("isolcpus", "nohz_full", "rcu_nocbs", "swap"):
        (s,) = by_name(settings, name)
        assert s.status == "not settable" and not s.settable, name
    assert by_name(settings, "vm")[0].current == "bare metal"


def test_tune_then_reset_restores_every_byte_intel(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root", driver="intel_pstate")
    before = snapshot(root)
    report = tune(FakeKernel(root), journal=journal)
    assert report.ok and report.cpus == (1, 2, 3)
    # IRQ 0 refuses (EIO): listed, not fatal.
    assert [f["target"] for f in report.failed] == ["irq 0"]
    assert (root / "proc/sys/kernel/randomize_va_space").read_text() == "0\n"
    assert (root / "sys/kernel/mm/transparent_hugepage/enabled").read_text() == (
        "always madvise [never]\n"
    )
    cpu1 = root / "sys/devices/system/cpu/cpu1"
    assert (cpu1 / "cpufreq/scaling_governor").read_text() == "performance\n"
    # Turbo went off first, so the minimum is the base frequency, not the turbo maximum.
    assert (cpu1 / "cpufreq/scaling_min_freq").read_text() == "3000000\n"
    assert (cpu1 / "cpuidle/state2/disable").read_text() == "1\n"
    assert (cpu1 / "cpuidle/state0/disable").read_text() == "0\n"
    cpu0 = root / "sys/devices/system/cpu/cpu0"
    assert (cpu0 / "cpufreq/scaling_governor").read_text() == "powersave\n"  # housekeeping
    assert (root / "proc/irq/24/smp_affinity_list").read_text() == "0\n"
    assert (root / "proc/irq/default_smp_affinity").read_text() == "1\n"
    # Tuned now; the refused IRQ is reported as not settable, not as differing.
    doc = jr.load(journal)
    assert doc["complete"] and doc["cpus"] == [1, 2, 3]
    plan, settings = catalogue(root, doc["cpus"], journal=doc)
    assert [s.name for s in settings if s.differs] == []
    (irq0,) = [s for s in settings if s.target == "irq 0"]
    assert irq0.status == "not settable" and "Input/output error" in irq0.note
    done = reset(FakeKernel(root), journal)
    assert done is not None and len(done.changed) == len(report.changed)
    assert not journal.exists()
    assert snapshot(root) == before


@pytest.mark.parametrize("driver", ["acpi-cpufreq", "amd-pstate"])
def test_amd_boost(tmp_path: Path, journal: Path, driver: str):
    root = build(tmp_path / "root", driver=driver)
    before = snapshot(root)
    _, settings = catalogue(root)
    boost = by_name(settings, "boost")
    assert boost and all(s.differs and s.recommended == "0" for s in boost)
    if driver == "acpi-cpufreq":
        assert [s.path for s in boost] == ["sys/devices/system/cpu/cpufreq/boost"]
        assert not by_name(settings, "epp")
    else:
        assert [s.target for s in boost] == ["cpu1", "cpu2", "cpu3"]
        assert len(by_name(settings, "epp")) == 3
    tune(FakeKernel(root), journal=journal)
    _, after = catalogue(root, journal=jr.load(journal))
    assert not [s for s in after if s.differs]
    gov = root / "sys/devices/system/cpu/cpu2/cpufreq/scaling_governor"
    assert gov.read_text() == "performance\n"
    reset(FakeKernel(root), journal)
    assert snapshot(root) == before


def test_no_cpufreq_is_unavailable_not_faked(tmp_path: Path):
    root = build(tmp_path / "root", driver=None, vm=True)
    _, settings = catalogue(root)
    (gov,) = by_name(settings, "governor")
    assert gov.status == "unavailable" and "VM" in gov.note
    assert not by_name(settings, "no_turbo") and not by_name(settings, "boost")
    # In a VM the idle states are the guest's: reported, not changed.
    idle = by_name(settings, "cpuidle")
    assert idle and all(not s.settable and s.status == "not settable" for s in idle)
    assert by_name(settings, "vm")[0].current.startswith("VM")


def test_smt_off_with_siblings(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root", cpus=8, smt_threads=2)
    before = snapshot(root)
    plan, settings = catalogue(root)
    # CPUs 4-7 are the second threads of cores 0-3: they go offline.
    assert plan.smt_off and plan.cpus == (1, 2, 3) and plan.housekeeping == (0,)
    assert by_name(settings, "smt")[0].differs
    with pytest.raises(ConfigError, match="go offline when SMT is turned off"):
        plan_cpus(FakeKernel(root), [5])
    kept = plan_cpus(FakeKernel(root), keep_smt=True)
    assert kept.cpus == (1, 2, 3, 4, 5, 6, 7)
    report = tune(FakeKernel(root), journal=journal)
    assert report.ok
    assert (root / "sys/devices/system/cpu/online").read_text() == "0-3\n"
    assert (root / "sys/devices/system/cpu/smt/control").read_text() == "off\n"
    plan2, after = catalogue(root, jr.load(journal)["cpus"], journal=jr.load(journal))
    assert plan2.cpus == (1, 2, 3) and not [s for s in after if s.differs]
    reset(FakeKernel(root), journal)
    assert snapshot(root) == before


def test_smt_off_refused_when_it_leaves_one_cpu(tmp_path: Path):
    root = build(tmp_path / "root", cpus=2, smt_threads=2)  # one core, two threads
    plan, settings = catalogue(root)
    (smt,) = by_name(settings, "smt")
    assert not smt.settable and "would leave 1 online CPU" in smt.note
    assert not plan.smt_off and plan.cpus == (1,)


def test_keep_smt(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root", cpus=4, smt_threads=2)
    report = tune(FakeKernel(root), journal=journal, keep_smt=True)
    assert report.cpus == (1, 2, 3)
    assert (root / "sys/devices/system/cpu/smt/control").read_text() == "on\n"
    doc = jr.load(journal)
    _, settings = catalogue(root, doc["cpus"], keep_smt=doc["keep_smt"], journal=doc)
    assert "kept on" in by_name(settings, "smt")[0].note
    assert not [s for s in settings if s.differs]


def test_bad_cpu_choices(tmp_path: Path):
    root = FakeKernel(build(tmp_path / "root", cpus=4))
    with pytest.raises(ConfigError, match="not online"):
        plan_cpus(root, [9])
    with pytest.raises(ConfigError, match="no CPU for housekeeping"):
        plan_cpus(root, [0, 1, 2, 3])
    one = FakeKernel(build(tmp_path / "one", cpus=1))
    with pytest.raises(ConfigError, match="one more CPU for housekeeping"):
        plan_cpus(one)
    assert plan_cpus(root, [2, 3]).housekeeping == (0, 1)


def test_explicit_cpus_leave_the_others_alone(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root", cpus=4)
    tune(FakeKernel(root), [3], journal)
    cpu = root / "sys/devices/system/cpu"
    assert (cpu / "cpu3/cpufreq/scaling_governor").read_text() == "performance\n"
    assert (cpu / "cpu2/cpufreq/scaling_governor").read_text() == "powersave\n"
    assert (root / "proc/irq/24/smp_affinity_list").read_text() == "0-2\n"
    reset(FakeKernel(root), journal)


def test_tune_over_a_journal_resets_it_first(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root")
    before = snapshot(root)
    tune(FakeKernel(root), [3], journal)
    second = tune(FakeKernel(root), [1, 2], journal)
    assert second.stale_reset is not None and second.stale_reset.changed
    # The journal holds the untouched values, so one reset restores the original host.
    doc = jr.load(journal)
    assert {e["original"] for e in doc["entries"] if e["name"] == "governor"} == {"powersave"}
    reset(FakeKernel(root), journal)
    assert snapshot(root) == before


def test_journal_is_written_before_the_first_change(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root")
    seen = []

    class Spy(FakeKernel):
        def write(self, rel, value):
            seen.append(jr.load(journal))
            super().write(rel, value)

    tune(Spy(root), journal=journal)
    first = seen[0]
    assert first is not None and not first["complete"]
    assert all(d == first for d in seen)  # one journal write before the changes
    assert len(first["entries"]) == len(seen)


def test_reset_without_journal_and_corrupt_journal(tmp_path: Path, journal: Path):
    root = FakeKernel(build(tmp_path / "root"))
    assert reset(root, journal) is None
    journal.parent.mkdir(parents=True, exist_ok=True)  # the lock file is there
    journal.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        reset(root, journal)


def test_reset_failure_keeps_what_was_not_restored(tmp_path: Path, journal: Path):
    root_dir = build(tmp_path / "root")
    tune(FakeKernel(root_dir), journal=journal)
    (root_dir / "proc/irq/24/refuse").write_text("")  # now the kernel refuses to move it back

    with pytest.raises(SysError, match="could not be restored"):
        reset(FakeKernel(root_dir), journal)
    left = jr.load(journal)["entries"]
    assert [e["path"] for e in left] == ["/proc/irq/24/smp_affinity_list"]
    (root_dir / "proc/irq/24/refuse").unlink()
    reset(FakeKernel(root_dir), journal)
    assert not journal.exists()
    assert (root_dir / "proc/irq/24/smp_affinity_list").read_text() == "0-3\n"


def test_the_lock_keeps_a_second_process_out(tmp_path: Path, journal: Path):
    root = FakeKernel(build(tmp_path / "root"))
    with jr.Lock(journal):
        code = (
            "import sys; from benchrun.host.tune import reset\n"
            "try:\n    reset(sys.argv[1], sys.argv[2])\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n"
        )
        p = subprocess.run(
            [sys.executable, "-c", code, root.path, str(journal)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "ConfigError" in p.stdout and "in use by another benchrun process" in p.stdout


KILLED_TUNE = """
import sys
sys.path.insert(0, sys.argv[1])
from support.fakehost import FakeKernel
from benchrun.host.tune import reset, tune
if sys.argv[4] == "tune":
    tune(FakeKernel(sys.argv[2]), journal=sys.argv[3])
else:
    reset(FakeKernel(sys.argv[2]), sys.argv[3])
print("not killed")
"""


def _run_killed(what: str, root: Path, journal: Path, after: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCHRUN_TUNE_KILL_AFTER": str(after)}
    return subprocess.run(
        [sys.executable, "-c", KILLED_TUNE, str(TESTS_PY), str(root), str(journal), what],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_sigkill_between_any_two_writes_then_reset_is_byte_identical(tmp_path: Path):
    pristine = build(tmp_path / "pristine", cpus=4, smt_threads=2, driver="intel_pstate")
    writes = len(tune(FakeKernel(pristine), journal=tmp_path / "count.json").changed)
    reset(FakeKernel(pristine), tmp_path / "count.json")
    before = snapshot(pristine)
    assert writes >= 15
    for after in range(1, writes + 1):
        root = tmp_path / f"root{after}"
        subprocess.run(["cp", "-a", str(pristine), str(root)], check=True)
        journal = tmp_path / f"j{after}" / "tune-journal.json"
        p = _run_killed("tune", root, journal, after)
        assert p.returncode == -signal.SIGKILL, (after, p.stdout, p.stderr)
        assert snapshot(root) != before  # it did change something
        if after % 5 == 0:  # and a reset killed half-way is finished by the next one
            p = _run_killed("reset", root, journal, max(1, after // 2))
            assert p.returncode == -signal.SIGKILL, (after, p.stderr)
        assert reset(FakeKernel(root), journal) is not None
        assert not journal.exists()
        assert snapshot(root) == before, after


def test_tuned_context_resets_on_exit_and_on_error(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root")
    before = snapshot(root)
    logs: list[str] = []
    with pytest.raises(RuntimeError):
        with tuned(FakeKernel(root), journal=journal, log=logs.append) as report:
            assert report.cpus == (1, 2, 3)
            assert jr.load(journal)["owner"] == "agent"
            raise RuntimeError("agent crashed")
    assert not journal.exists() and snapshot(root) == before
    assert any("host tuned" in m for m in logs) and any("host reset" in m for m in logs)


def test_tuned_context_undoes_a_tune_that_failed_half_way(tmp_path: Path, journal: Path):
    root = build(tmp_path / "root")
    before = snapshot(root)

    class Dies(FakeKernel):
        writes = 0

        def write(self, rel, value):
            Dies.writes += 1
            if Dies.writes == 5:
                raise KeyboardInterrupt  # not an OSError: tune itself does not catch it
            super().write(rel, value)

    with pytest.raises(KeyboardInterrupt):
        with tuned(Dies(root), journal=journal):
            pass
    assert not journal.exists() and snapshot(root) == before


def test_benchmark_cpus(tmp_path: Path, journal: Path):
    from benchrun.host import benchmark_cpus

    root = build(tmp_path / "root")
    assert benchmark_cpus(journal) is None
    tune(FakeKernel(root), [2, 3], journal)
    assert benchmark_cpus(journal) == (2, 3)
    reset(FakeKernel(root), journal)


def test_stale_agent_journal_is_reset(tmp_path: Path, journal: Path):
    from benchrun.host.tune import reset_stale_agent_journal

    root = build(tmp_path / "root")
    before = snapshot(root)
    tune(FakeKernel(root), journal=journal, owner="agent")  # an agent that died: lock free
    assert reset_stale_agent_journal(FakeKernel(root), journal) is not None
    assert snapshot(root) == before
    tune(FakeKernel(root), journal=journal)  # a CLI tune is the administrator's: left alone
    assert reset_stale_agent_journal(FakeKernel(root), journal) is None
    assert journal.exists()
    reset(FakeKernel(root), journal)


def test_attest(tmp_path: Path):
    root = build(tmp_path / "root")
    state = tmp_path / "state"
    a = attest(root, state=state)
    assert a["tuned"] is False and a["journal"] is False and a["cpus"] is None
    assert {"aslr", "thp_enabled", "governor", "irq_affinity"} <= set(a["differs"])
    assert a["noise"] is None
    tune(FakeKernel(root), [2, 3], state / "tune-journal.json")
    state.joinpath("noise.json").write_text(
        json.dumps({"measured_at": 1000.0, "score": 0.012, "workloads": {"cpu": {"cv": 0.01}}})
    )
    a = attest(root, state=state)
    assert a["tuned"] is True and a["differs"] == [] and a["cpus"] == [2, 3] and a["journal"]
    assert a["noise"]["score"] == 0.012 and a["noise"]["age_s"] > 0
    assert "workloads" not in a["noise"]  # scalars only: the summary stays small
    json.dumps(a)
    reset(FakeKernel(root), state / "tune-journal.json")


def test_cli_check_tune_reset_on_a_fake_root(tmp_path: Path, capsys):
    root = build(tmp_path / "root")
    journal = tmp_path / "j.json"
    assert cli.main(["host", "check", "--root", str(root), "--journal", str(journal)]) == 1
    out = capsys.readouterr().out
    assert "NOT tuned" in out and "irq_affinity (6 irqs)" in out
    assert cli.main(["host", "tune", "--root", str(root), "--journal", str(journal),
                     "--cpus", "2-3"]) == 0  # fmt: skip
    assert "host tuned for CPUs 2-3" in capsys.readouterr().out
    code = cli.main(["host", "check", "--json", "--root", str(root), "--journal", str(journal)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["tuned"] and doc["cpus"] == [2, 3] and doc["housekeeping"] == [0, 1]
    assert cli.main(["host", "reset", "--root", str(root), "--journal", str(journal)]) == 0
    assert "journal" in capsys.readouterr().out and not journal.exists()
    assert cli.main(["host", "reset", "--root", str(root), "--journal", str(journal)]) == 0
    assert "nothing to reset" in capsys.readouterr().out
    assert cli.main(["host", "tune", "--root", str(root), "--journal", str(journal),
                     "--cpus", "x"]) == 125  # fmt: skip
    assert "--cpus 'x'" in capsys.readouterr().err
