"""Finding 4: a root run's workload is not host root (sandbox backend).

Before, workload processes of a root run were uid 0 of the initial user namespace: they shared
host root's per-user kernel quotas (a run holding 128 inotify instances made `inotify_init` fail
for host root) and its identity. Now they run in a user namespace mapped to a host id range of
their own. The VM backend has its own kernel and is not concerned. Each test watches the running
workload from the host: the program prints nothing until the test has looked.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest

from support.ocilayout import Layer

HOLD = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>
/* argv[1]: a marker the host finds us by; holds as many inotify instances as it can (up to 200),
   creates /made-by-workload in its root (the overlay's upper layer), then sleeps
   argv[2] seconds while the host looks, and prints its uid_map. */
int main(int argc, char **argv) {
  int n = 0;
  while (n < 200 && inotify_init1(IN_CLOEXEC) >= 0) n++;
  FILE *f = fopen("/made-by-workload", "w");
  if (f) fclose(f);
  printf("instances %d uid %d euid %d\n", n, getuid(), geteuid());
  fflush(stdout);
  sleep(atoi(argv[2]));
  FILE *m = fopen("/proc/self/uid_map", "r");
  char line[256];
  while (m && fgets(line, sizeof line, m)) printf("map %s", line);
  return 0;
}
"""


def find_process(marker: str, timeout: float = 60) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[0].endswith(b"/attack/hold") and marker.encode() in cmdline:
                return int(pid)
        time.sleep(0.05)
    return None


def inotify_count(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            pass
    return n


def status_ids(pid: int, key: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def run_in_background(attack: Callable, image, argv: list[str], **options):
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = attack(image, argv, **options)
        except BaseException as e:  # reported by the test
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    return t, box


def test_workload_does_not_use_host_roots_inotify_quota(attacker_image, attack):
    image = attacker_image({"hold": HOLD})
    marker = uuid.uuid4().hex
    t, box = run_in_background(attack, image, ["/attack/hold", marker, "4"])
    try:
        pid = find_process(marker)
        assert pid is not None, box
        deadline = time.monotonic() + 30
        while inotify_count(pid) < 128 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = inotify_count(pid)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_CLOEXEC)
        err = ctypes.get_errno()
        if fd >= 0:
            os.close(fd)
        # The workload holds the 128 instances a user may have; host root still gets one.
        assert held >= 128
        assert fd >= 0, f"inotify_init1 failed for host root: {os.strerror(err)}"
        # Host view of the workload: not root; the file it created belongs to the same id.
        uids = status_ids(pid, "Uid")
        assert 0 not in uids, uids
        # Seen from the host through the workload's root: stored as the range's id, not root's.
        made = Path(f"/proc/{pid}/root/made-by-workload")
        while not made.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert made.stat().st_uid == uids[0] != 0
        assert made.stat().st_gid == status_ids(pid, "Gid")[0] != 0
    finally:
        t.join()
    r = box["result"]
    assert r.exit_code == 0, r.stderr
    out = r.stdout.decode()
    # Inside it is root of its namespace, whose map is not the identity.
    assert "uid 0 euid 0" in out
    maps = [line.split()[1:] for line in out.splitlines() if line.startswith("map ")]
    assert maps and maps != [["0", "0", "4294967295"]]
    assert maps[0][0] == "0" and int(maps[0][1]) == uids[0] and int(maps[0][2]) >= 65536


def test_setuid_root_binary_is_root_only_inside(attacker_image, attack, tmp_path):
    # /attack/suid: the same program, setuid root (mode 4755, owner 0) in the image. Run as an
    # image user, no_new_privs keeps even the namespace's euid 0 away; whatever the ids inside,
    # the host sees only ids of the run's range.
    src = tmp_path / "hold.c"
    src.write_text(HOLD)
    exe = tmp_path / "hold"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    suid = Layer("gzip").dir("attack").file("attack/hold", exe.read_bytes(), mode=0o4755)
    image = attacker_image({"unused": "int main(void) { return 0; }"}, layers=(suid,))
    marker = uuid.uuid4().hex
    t, box = run_in_background(attack, image, ["/attack/hold", marker, "2"], user="65534")
    try:
        pid = find_process(marker)
        assert pid is not None, box
        uids = status_ids(pid, "Uid")
        assert all(u >= 65536 for u in uids), uids  # neither 0 nor a host user's own 65534
    finally:
        t.join()
    r = box["result"]
    assert r.exit_code == 0, r.stderr
    assert b"uid 65534 euid 65534" in r.stdout
