"""Finding 3 (no default limits) and finding 10's mountinfo: the programs a runaway or an attacker
would run, against the limits every run gets without flags (docs/security.md)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

import benchrun
from benchrun import _core, runner


MiB = 1 << 20

FORK_BOMB = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
  int n = 0;
  for (; n < 2000; n++) {
    pid_t p = fork();
    if (p < 0) { printf("forks %d errno %d\n", n, errno); break; }
    if (p == 0) { pause(); _exit(0); }
  }
  if (n == 2000) printf("forks %d unbounded\n", n);
  fflush(stdout);
  kill(-1, SIGKILL);  /* init of the run's pid namespace: every other process in it */
  while (wait(NULL) > 0) {}
  return 0;
}
"""

MEMORY_HOG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  for (size_t mb = 16; mb <= 1024; mb += 16) {
    char *p = malloc(16 << 20);
    if (!p) { printf("malloc failed at %zu MiB\n", mb); return 1; }
    memset(p, 1, 16 << 20);
    printf("%zu MiB\n", mb);
    fflush(stdout);
  }
  printf("unbounded\n");
  return 0;
}
"""

# fill DIR: writes 1 MiB chunks to DIR/fill until a write fails or CAP MiB are written; then
# creates empty files DIR/f<n> until that fails or FILES exist. Prints "<dir> bytes <n> errno <e>
# files <n> errno <e>".
FILL = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  const char *dir = argv[1];
  long cap = atol(argv[2]), files = atol(argv[3]);
  static char buf[1 << 20];
  memset(buf, 7, sizeof buf);
  char path[4096];
  snprintf(path, sizeof path, "%s/fill", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  long written = 0; int werr = 0;
  if (fd < 0) werr = errno;
  while (fd >= 0 && written < cap << 20) {
    ssize_t n = write(fd, buf, sizeof buf);
    if (n < 0) { werr = errno; break; }
    written += n;
    if (n < (ssize_t)sizeof buf) { werr = ENOSPC; break; }
  }
  if (fd >= 0 && fsync(fd) != 0 && !werr) werr = errno;
  long made = 0; int ferr = 0;
  for (; made < files; made++) {
    snprintf(path, sizeof path, "%s/f%ld", dir, made);
    int f = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (f < 0) { ferr = errno; break; }
    close(f);
  }
  printf("%s bytes %ld errno %d files %ld errno %d\n", dir, written, werr, made, ferr);
  return 0;
}
"""

PROGRAMS = {"forkbomb": FORK_BOMB, "hog": MEMORY_HOG, "fill": FILL}


def _fields(line: str) -> dict[str, int]:
    """'<dir> bytes N errno E files N errno E' -> {'bytes': N, 'werr': E, 'files': N, 'ferr': E}"""
    w = line.split()
    return {"bytes": int(w[2]), "werr": int(w[4]), "files": int(w[6]), "ferr": int(w[8])}


def _loops_under(store: Path) -> list[str]:
    out = []
    for dev in Path("/sys/block").glob("loop*"):
        try:
            backing = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(store)):
            out.append(f"{dev.name}: {backing}")
    return out


def _wait_no_loops(store: Path) -> None:
    # A finished run's mounts are released on a thread of their own (and the loop device then
    # detaches itself): give that a moment.
    deadline = time.monotonic() + 5
    while _loops_under(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _loops_under(store) == []


def _leftovers(store: Path) -> list[str]:
    runs = store / "runs"
    return [p.name for p in runs.iterdir()] if runs.exists() else []


@pytest.mark.parametrize("backend", ["sandbox"])
def test_fork_bomb_stops_at_the_default_pids_limit(attacker_image, attack, backend):
    r = attack(attacker_image(PROGRAMS), ["forkbomb"], backend=backend)
    assert r.ok, r
    out = r.stdout.decode()
    assert "unbounded" not in out, out
    forks = int(out.split()[1])
    assert 0 < forks < 1024, out  # the workload itself is one of the 1024
    assert r.limits["pids"] == 1024
    assert os.fork  # the host still forks: this test process goes on


def test_memory_hog_is_oom_killed_at_the_default(attacker_image, store, tmp_path):
    # The default is 3/4 of the host's RAM: the host's meminfo is a parameter, so a host of 512 MiB
    # (default 384 MiB) shows it without filling this machine.
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:         524288 kB\nMemFree:          524288 kB\n")
    spec = runner.make_spec(attacker_image(PROGRAMS).ref, ["hog"], store=store, timeout=120)
    image, _ = runner.load_image(spec)
    d = _core.run(image=image, spec=spec.core, store=str(store), meminfo=str(meminfo))
    r = benchrun.Result._from_core(d, 0.0)
    out = r.stdout.decode()
    assert "unbounded" not in out, out
    assert r.oom_killed, (r.exit_code, r.signal, out[-200:])
    assert r.limits["memory"] == 384 * MiB
    assert r.limits["tmpfs"] == 192 * MiB
    assert r.to_json()["limits"]["memory"] == 384 * MiB
    assert benchrun.Result.from_json(r.to_json()).limits == r.limits


def test_tmp_and_dev_shm_fill_stops_at_half_the_memory_limit(attacker_image, attack):
    r = attack(
        attacker_image(PROGRAMS),
        ["sh", "-c", "fill /tmp 256 0 && rm /tmp/fill && fill /dev/shm 256 0"],
        memory="128m",
    )
    assert not r.oom_killed, r.stdout
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2, r
    for line in lines:
        f = _fields(line)
        assert f["werr"] == errno.ENOSPC, line
        assert f["bytes"] <= 64 * MiB, line
    assert r.limits["tmpfs"] == 64 * MiB


def test_disk_fill_of_the_writable_layer_is_bounded(attacker_image, attack, store):
    r = attack(attacker_image(PROGRAMS), ["fill", "/", "256", "50000"], disk="64m")
    assert r.exit_code == 0, r
    f = _fields(r.stdout.decode())
    assert f["werr"] == errno.ENOSPC and f["bytes"] < 64 * MiB, f
    assert f["ferr"] == errno.ENOSPC and f["files"] < 50000, f  # inodes are bounded too
    assert r.limits["disk"] == 64 * MiB
    # Nothing of the run is left on the host: no run dir, no loop device on its image.
    assert _leftovers(store) == []
    _wait_no_loops(store)


def test_unlimited_is_explicit_and_recorded(attacker_image, attack):
    r = attack(
        attacker_image(PROGRAMS),
        ["true"],
        memory="unlimited",
        pids_limit="unlimited",
        disk="unlimited",
    )
    assert r.ok, r
    assert r.limits["memory"] is None and r.limits["pids"] is None and r.limits["disk"] is None
    assert r.limits["tmpfs"] and r.limits["tmpfs"] > 0


def test_mountinfo_shows_no_host_path(attacker_image, attack, store):
    r = attack(attacker_image(PROGRAMS), ["cat", "/proc/self/mountinfo"])
    assert r.ok, r
    info = r.stdout.decode()
    assert "overlay" in info, info
    assert str(store) not in info, info
    assert str(Path(store).resolve()) not in info, info


@pytest.mark.slow
def test_vm_guest_limits_in_one_run(attacker_image, attack, store):
    # One VM run (TCG boots are slow) for every check that applies inside the guest: the pids
    # default, /tmp and /dev/shm at half the memory limit, the writable root bounded by the root
    # disk's free space, and a mountinfo without host paths.
    script = (
        "forkbomb; fill /tmp 256 0; rm /tmp/fill; fill /dev/shm 256 0; rm /dev/shm/fill; "
        "fill / 2048 200000; rm -f /fill /f*; cat /proc/self/mountinfo"
    )
    r = attack(attacker_image(PROGRAMS), ["sh", "-c", script], backend="vm", memory="128m")
    assert r.exit_code == 0, r
    lines = r.stdout.decode().splitlines()
    assert "unbounded" not in lines[0] and 0 < int(lines[0].split()[1]) < 1024, lines[0]
    for line in lines[1:3]:
        f = _fields(line)
        assert f["werr"] == errno.ENOSPC and f["bytes"] <= 64 * MiB, line
    disk = _fields(lines[3])
    assert disk["werr"] == errno.ENOSPC, lines[3]
    assert disk["bytes"] <= r.limits["disk"], (lines[3], r.limits)
    info = "\n".join(lines[4:])
    assert str(store) not in info and str(Path(store).resolve()) not in info, info
    assert r.limits["pids"] == 1024 and r.limits["memory"] == 128 * MiB
    assert r.limits["tmpfs"] == 64 * MiB


def test_a_killed_runner_leaves_no_loop_device_or_disk_image(attacker_image, store):
    import signal
    import subprocess
    import sys

    info = attacker_image(PROGRAMS)
    code = (
        "import benchrun, sys; benchrun.run(sys.argv[1], ['sleep', '600'], store=sys.argv[2], "
        "disk='32m')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, info.ref, str(store)])
    try:
        deadline = time.monotonic() + 60
        while not _loops_under(store):
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # past the release: the workload runs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _loops_under(store) and _leftovers(store)  # the workload outlived its runner
    assert _core.cleanup_leftovers(store=str(store)) >= 1
    _wait_no_loops(store)
    assert _leftovers(store) == []


def test_defaults_without_their_controllers_are_dropped_with_a_notice(attacker_image, store):
    # A v2 hierarchy that offers neither memory nor pids (here: the hybrid host's empty cgroup2 at
    # unified/; a production v2 host that delegates only some controllers looks the same). The
    # default limits are left out, said so and recorded; an explicit one still fails, naming it.
    unified = Path("/sys/fs/cgroup/unified")
    offered = (unified / "cgroup.controllers").read_text().split()
    if not unified.is_dir() or "memory" in offered or "pids" in offered:
        pytest.skip("needs a cgroup2 mount without the memory and pids controllers")
    spec = runner.make_spec(attacker_image(PROGRAMS).ref, ["true"], store=store, timeout=60)
    image, _ = runner.load_image(spec)
    d = _core.run(image=image, spec=spec.core, store=str(store), cgroup_root=str(unified))
    r = benchrun.Result._from_core(d, 0.0)
    assert r.ok, r
    assert r.limits["memory"] is None and r.limits["pids"] is None
    notes = " ".join(r.notices)
    assert "no default memory limit" in notes and "no default pids limit" in notes, r.notices
    explicit = runner.make_spec(
        attacker_image(PROGRAMS).ref, ["true"], store=store, timeout=60, memory="64m"
    )
    with pytest.raises(benchrun.SandboxError, match="cgroup controller 'memory'"):
        _core.run(image=image, spec=explicit.core, store=str(store), cgroup_root=str(unified))
