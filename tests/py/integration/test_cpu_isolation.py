"""CPU isolation for real on this host: a CPU partition (v1 cpu_exclusive / v2 partition) on the
last CPU, runs allocated CPUs from it (seen from inside the run and from its cgroup), two runs
never sharing a CPU, and a microVM's vCPU thread pinned to its CPU with QEMU's other threads on
the housekeeping CPU. The partition uses a name of its own (not the shared "benchrun" parent), and
everything is removed afterwards."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import benchrun
from benchrun.errors import SandboxError
from benchrun.host import partition
from support.ocilayout import busybox_layer, write_layout

pytestmark = pytest.mark.root

CGROUP = Path("/sys/fs/cgroup")

needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="a partition needs a housekeeping CPU: 2+ CPUs"
)


@pytest.fixture
def image(tmp_path: Path, store: Path) -> str:
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    benchrun.pull(info.ref, store=store)
    return info.ref


def cgroup_dirs(name: str) -> list[Path]:
    """Every directory of the parent `name` (one per v1 hierarchy, or the v2 one)."""
    return [d for d in list(CGROUP.glob(f"*/{name}")) + [CGROUP / name] if d.is_dir()]


@pytest.fixture
def parent(monkeypatch) -> str:
    """A runs' parent of this test's own (BENCHRUN_CGROUP_PARENT); removed with all its
    hierarchies' directories afterwards, which must be empty of runs by then."""
    name = f"benchrun-isotest-{os.getpid()}"
    monkeypatch.setenv("BENCHRUN_CGROUP_PARENT", name)
    yield name
    partition.remove(name=name)
    leftovers = [str(d) for d in cgroup_dirs(name)]
    for d in cgroup_dirs(name):
        d.rmdir()  # only possible when no run cgroup is left in it
    assert not leftovers, f"left behind: {leftovers}"


@pytest.fixture
def bench_cpu(parent: str) -> int:
    """A partition of the last CPU; exclusive when the host allows it (on a v1 host whose other
    top-level cpusets span every CPU it cannot be: create must say which, and shared is kept)."""
    cpu = max(os.sched_getaffinity(0))
    try:
        st = partition.create([cpu], name=parent)
        assert st.exclusive
    except SandboxError as e:
        assert e.stage == "cpu partition"
        # The refusal names the cgroup in the way (e.g. docker's or the shared benchrun parent).
        assert "sibling" in str(e) and "(cpus " in str(e), str(e)
        st = partition.create([cpu], name=parent, require_exclusive=False)
        assert not st.exclusive and "cpus" in st.note
    assert st.exists and st.cpus == (cpu,) and cpu not in st.housekeeping
    assert partition.status(name=parent).cpus == (cpu,)
    return cpu


def allowed_list(status_text: str) -> str:
    for line in status_text.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list in status")


def watch(pattern_dir: Path, file: str, until: threading.Event, seen: list[str]) -> None:
    """Collects the content of <run cgroup>/<file> for the runs under pattern_dir while they run."""
    while not until.is_set():
        for d in pattern_dir.glob("run-*"):
            try:
                seen.append((d / file).read_text().strip())
            except OSError:
                pass
        time.sleep(0.02)


@needs_two_cpus
def test_partition_run_sees_only_its_cpu(image: str, store: Path, parent: str, bench_cpu: int):
    cpuset_parent = next(d for d in cgroup_dirs(parent) if (d / "cpuset.cpus").exists())
    stop, seen = threading.Event(), []
    t = threading.Thread(target=watch, args=(cpuset_parent, "cpuset.cpus", stop, seen))
    t.start()
    try:
        r = benchrun.run(
            image, ["sh", "-c", "cat /proc/self/status; sleep 0.5"], vcpus=1, store=store
        )
    finally:
        stop.set()
        t.join()
    assert r.ok, r.stderr
    assert allowed_list(r.stdout.decode()) == str(bench_cpu)
    assert seen and set(seen) == {str(bench_cpu)}, seen  # the run's cgroup, from outside
    assert r.facts["cpus"] == str(bench_cpu)
    assert r.facts["cpu_partition"] in ("exclusive", "shared", "isolated", "root")
    assert str(bench_cpu) not in r.facts["housekeeping_cpus"].split(",")
    # The runner thread is back on every CPU it had.
    assert bench_cpu in os.sched_getaffinity(0)
    # A CPU outside the partition is refused before anything runs.
    with pytest.raises(benchrun.ConfigError, match="not among the CPUs runs may use"):
        benchrun.run(image, ["true"], cpuset_cpus=[min(os.sched_getaffinity(0))], store=store)


@needs_two_cpus
def test_concurrent_runs_never_share_the_cpu(image: str, store: Path, parent: str, bench_cpu: int):
    done: dict[str, object] = {}

    def first() -> None:
        done["r"] = benchrun.run(image, ["sleep", "2"], vcpus=1, store=store)

    t = threading.Thread(target=first)
    t.start()
    try:
        deadline = time.monotonic() + 20
        # (Between its flock and its note the holder reads as "another run".)
        while not partition.holders([bench_cpu])[bench_cpu].startswith("run-"):
            assert time.monotonic() < deadline, "the first run never took its CPU"
            time.sleep(0.02)
        holder = partition.holders([bench_cpu])[bench_cpu]
        assert holder.startswith(f"run-{os.getpid()}-"), holder
        with pytest.raises(SandboxError, match=f"CPU {bench_cpu} is held by run-") as e:
            benchrun.run(image, ["true"], vcpus=1, store=store)
        assert e.value.stage == "cpu allocation"
        # With a wait it queues behind the first and runs once that is over.
        t0 = time.monotonic()
        r2 = benchrun.run(image, ["true"], vcpus=1, cpu_wait=30, store=store)
        assert r2.ok and r2.facts["cpus"] == str(bench_cpu)
        assert time.monotonic() - t0 > 0.2
    finally:
        t.join()
    assert done["r"].ok  # type: ignore[attr-defined]
    assert partition.holders([bench_cpu])[bench_cpu] == ""


def qemu_threads(pid: int) -> dict[int, str]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = allowed_list((task / "status").read_text())
        except OSError:
            pass
    return out


def vm_run_with_threads(image: str, store: Path) -> tuple[benchrun.Result, dict[int, str]]:
    """A VM run; QEMU's threads' allowed CPUs (thread -> Cpus_allowed_list), read while the
    workload runs: the last view of /proc/<qemu>/task that still holds the pinned vCPU thread."""
    before = set(os.listdir("/proc"))
    snapshots: list[dict[int, str]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for p in set(os.listdir("/proc")) - before:
                if not p.isdigit():
                    continue
                try:
                    if b"qemu-system" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]:
                        # The latest full view: threads that ended before the pinning (start-up
                        # helpers) are not QEMU's threads during the run.
                        now = qemu_threads(int(p))
                        if now:
                            snapshots.append(now)
                except OSError:
                    pass
            time.sleep(0.1)

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = benchrun.run(
            image, ["sh", "-c", "sleep 2"], backend="vm", vcpus=1, store=store, timeout=120
        )
    finally:
        stop.set()
        t.join()
    assert r.ok, (r.stderr, r.notices)
    vcpus = set(vcpu_pins(r))
    views = [v for v in snapshots if vcpus <= set(v)]
    assert views, f"QEMU's threads were never seen with the vCPU threads {vcpus}"
    return r, views[-1]


def vcpu_pins(r: benchrun.Result) -> dict[int, int]:
    return {
        int(tid): int(cpu)
        for tid, cpu in (p.split(":") for p in str(r.facts["vcpu_threads"]).split(","))
    }


@needs_two_cpus
def test_vm_vcpu_thread_pinned_others_on_housekeeping(image: str, store: Path, parent: str):
    # No partition: the run takes a free CPU, QEMU's own threads go to the other one.
    r, threads = vm_run_with_threads(image, store)
    pins = vcpu_pins(r)
    assert len(pins) == 1
    ((tid, cpu),) = pins.items()
    assert r.facts["cpus"] == str(cpu)
    assert threads.get(tid) == str(cpu), threads  # seen from /proc while it ran
    housekeeping = r.facts["housekeeping_cpus"]
    others = {t: a for t, a in threads.items() if t != tid}
    assert others and set(others.values()) == {housekeeping}, (others, housekeeping)
    assert r.facts["qemu_threads_on_housekeeping"] >= 1


@needs_two_cpus
def test_vm_in_partition_pins_the_vcpu(image: str, store: Path, parent: str, bench_cpu: int):
    r, threads = vm_run_with_threads(image, store)
    pins = vcpu_pins(r)
    assert list(pins.values()) == [bench_cpu]
    (tid,) = pins
    assert threads.get(tid) == str(bench_cpu), threads


@needs_two_cpus
def test_cli_partition_create_status_remove(parent: str):
    import json
    import subprocess
    import sys

    cpu = max(os.sched_getaffinity(0))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchrun.cli", "host", "partition", *args],
            capture_output=True,
            text=True,
        )

    p = cli("status", "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["exists"] is False, p.stderr
    p = cli("create", str(cpu))
    if p.returncode != 0:  # exclusivity refused: the error names the sibling cgroups in the way
        assert "benchrun: error:" in p.stderr and "sibling" in p.stderr, p.stderr
        p = cli("create", str(cpu), "--allow-shared")
        assert p.returncode == 0 and "note:" in p.stdout, p.stderr
    st = json.loads(cli("status", "--json").stdout)
    assert st["exists"] and st["cpus"] == str(cpu) and str(cpu) not in st["housekeeping"]
    p = cli("remove")
    assert p.returncode == 0 and "no CPU partition" in p.stdout, p.stderr
    assert cli("create", "0-1023").returncode != 0  # offline CPUs: a clear error
