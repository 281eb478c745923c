"""The microVM backend end to end on real parts: Debian's kernel under QEMU, the guest init, the
ext4 cache; boot failures with the console's tail; nothing left after Ctrl-C or a SIGKILLed runner.
(The scenario suite in tests/py/scenarios runs every scenario on this backend too.)"""

from __future__ import annotations

import hashlib
import os
import re
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


@pytest.fixture
def image(tmp_path: Path, store: Path) -> str:
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    benchrun.pull(info.ref, store=store)
    return info.ref


def qemus_with(text: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmd.split(b"\0")[0] and text.encode() in cmd:
            found.append(int(p.name))
    return found


def host_has_hw_virt() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M) is not None


def test_result_reports_the_vm(image: str, store: Path):
    r = benchrun.run(image, ["sh", "-c", "uname -r; echo err >&2; sleep 0.2"], backend="vm",
                     store=store, timeout=60)
    assert r.ok, r.stderr
    assert r.backend == "vm"
    assert r.vm is not None
    release = r.stdout.decode().strip()
    assert r.vm["kernel_release"] == release and re.match(r"^\d+\.\d+", release)
    assert r.stderr == b"err\n"
    assert r.vm["accel"] in ("kvm", "tcg")
    if not host_has_hw_virt():
        assert r.vm["accel"] == "tcg"
        assert any("TCG" in n for n in r.notices), r.notices
    assert r.vm["vcpus"] == 1 and r.vm["memory_mib"] == 1024
    assert 0 < r.vm["guest_boot_time"] < r.vm["boot_time"] < 60
    assert r.vm["vmm_cpu"] > 0 and r.vm["vmm_peak_memory"] > 0
    assert 0.2 <= r.wall_time < r.phases["run"] + 1  # the clock covers the whole workload
    assert set(r.phases) == {"pull", "prepare", "start", "run", "collect"}
    # The JSON document carries the vm block and reads back exactly.
    assert benchrun.Result.from_json(r.to_json()) == r


def test_cached_root_image_is_never_written(image: str, store: Path):
    cache = Path(os.environ["BENCHRUN_VM_CACHE"]) / "ext4"
    r = benchrun.run(image, ["true"], backend="vm", store=store, timeout=60)
    assert r.ok and r.vm is not None and r.vm["rootfs_cached"] in (True, False)
    chain = benchrun.inspect(image, store=store).rootfs.name.split("-", 1)[1]
    disk = cache / f"{chain}.ext4"
    before = (hashlib.sha256(disk.read_bytes()).hexdigest(), disk.stat().st_mtime_ns)
    r = benchrun.run(image, ["sh", "-c", "rm -rf /bin/ls /etc; echo x > /new; sync"],
                     backend="vm", store=store, timeout=60)
    assert r.ok, r.stderr
    assert r.vm["rootfs_cached"] is True
    assert (hashlib.sha256(disk.read_bytes()).hexdigest(), disk.stat().st_mtime_ns) == before
    r = benchrun.run(image, ["sh", "-c", "test -e /bin/ls && test ! -e /new"], backend="vm",
                     store=store, timeout=60)
    assert r.ok, r.stderr


def test_guest_that_cannot_boot_fails_fast_with_the_console_tail(image: str, store: Path,
                                                                monkeypatch):
    # A dynamically linked /init cannot run in the initramfs: the kernel panics. With panic=-1 and
    # -no-reboot QEMU exits at once, and the error carries what the console printed.
    monkeypatch.setenv("BENCHRUN_GUEST_INIT", "/bin/true")
    t0 = time.monotonic()
    with pytest.raises(benchrun.VmError) as e:
        benchrun.run(image, ["true"], backend="vm", store=store, timeout=60)
    assert time.monotonic() - t0 < 45
    msg = str(e.value)
    assert "guest console tail" in msg and "Kernel panic" in msg, msg
    assert qemus_with(str(store)) == []


def test_bad_kernel_is_refused_before_boot(image: str, store: Path, tmp_path: Path):
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"\x7fELF" + os.urandom(4096))
    with pytest.raises(benchrun.VmError, match="bzImage"):
        benchrun.run(image, ["true"], backend="vm", kernel=bogus, store=store, timeout=60)


def test_missing_command_is_the_sandbox_error(image: str, store: Path):
    with pytest.raises(benchrun.SandboxError, match="exec 'nosuchcmd'") as e:
        benchrun.run(image, ["nosuchcmd"], backend="vm", store=store, timeout=60)
    assert e.value.stage == "exec"


def test_workload_setup_failure_is_the_sandbox_error_of_its_stage(image: str, store: Path):
    # The guest runs the sandbox's child: its stage and wording, not a VM (init) failure.
    with pytest.raises(benchrun.SandboxError) as e:
        benchrun.run(image, ["true"], backend="vm", workdir="/bin/busybox/sub", store=store,
                     timeout=60)
    assert e.value.stage == "create workdir"
    assert str(e.value) == "sandbox setup failed at 'create workdir': Not a directory"


def test_prune_removes_vm_images_of_removed_images(image: str, store: Path, monkeypatch):
    # The store's own VM cache (the default), sharing only the downloaded kernel.
    monkeypatch.delenv("BENCHRUN_VM_CACHE")
    (store / "vm").mkdir(parents=True)
    (store / "vm" / "kernels").symlink_to(Path(os.environ["BENCHRUN_TEST_CACHE_VM"]) / "kernels")
    assert benchrun.run(image, ["true"], backend="vm", store=store, timeout=60).ok
    chain = benchrun.inspect(image, store=store).rootfs.name.split("-", 1)[1]
    disk = store / "vm" / "ext4" / f"{chain}.ext4"
    assert disk.exists()
    assert benchrun.prune(store=store)["vm_images_removed"] == 0  # still used
    benchrun.rmi(image, store=store)
    stats = benchrun.prune(store=store)
    assert stats["vm_images_removed"] == 1 and not disk.exists()


CHILD = """
import sys, benchrun
print("started", flush=True)
try:
    benchrun.run(sys.argv[1], ["sh", "-c", "echo running; sleep 600"], store=sys.argv[2],
                 backend="vm")
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def _start_child(image: str, store: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, image, str(store)],
                            stdout=subprocess.PIPE, env=dict(os.environ))


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_no_qemu_survives_its_runner(image: str, store: Path, how: str):
    child = _start_child(image, store)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"started\n"
        assert wait_for(lambda: qemus_with(str(store)), timeout=60)
        time.sleep(1)
        child.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
        rc = child.wait(timeout=60)
        assert rc == (130 if how == "SIGINT" else -9)
        # QEMU dies with its runner (PR_SET_PDEATHSIG), whatever killed the runner.
        assert wait_for(lambda: qemus_with(str(store)) == [], timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    runs = store / "runs"
    if how == "SIGINT":
        assert list(runs.glob("run-*")) == []
    else:  # the next run sweeps what the killed runner left (run dir with sockets, overlay)
        assert list(runs.glob(f"run-{child.pid}-*"))
        r = benchrun.run(image, ["true"], backend="vm", store=store, timeout=60)
        assert r.ok
        assert list(runs.glob("run-*")) == []
