"""The emulator is the VM backend's attack surface: a guest that escapes into QEMU must find an
unprivileged, seccomp-filtered process, not host root."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from support.ocilayout import busybox_layer, write_layout

import benchrun


def status_fields(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def our_qemus() -> list[dict[str, str]]:
    """/proc/<pid>/status of each QEMU this process started."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = status_fields(int(p.name))
        except OSError:
            continue
        if fields.get("PPid") == str(os.getpid()) and fields.get("Name", "").startswith("qemu"):
            found.append(fields)
    return found


def test_qemu_runs_filtered(tmp_path: Path, store: Path):
    # QEMU keeps its user: -runas (dropping to nobody) changes its euid, which clears the
    # PR_SET_PDEATHSIG that kills it with its runner (test_vm.py: no QEMU survives its runner).
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    done: list = []
    t = threading.Thread(
        target=lambda: done.append(
            benchrun.run(info.ref, ["sleep", "3"], backend="vm", store=store, timeout=120)
        )
    )
    t.start()
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 90
    while t.is_alive() and time.monotonic() < deadline and not seen:
        for fields in our_qemus():
            # The filter is installed once QEMU has parsed its options, before the guest starts.
            if fields.get("Seccomp") == "2":
                seen = fields
        time.sleep(0.05)
    t.join(120)
    assert done and done[0].ok, done
    assert seen, "QEMU never ran under its seccomp filter"
    assert seen["Seccomp"] == "2"  # filter mode
