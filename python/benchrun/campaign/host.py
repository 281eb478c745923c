"""Host facts recorded with every run: what decides whether two results are comparable (CPU,
kernel, frequency governor, SMT, turbo, ASLR, isolation backend, benchrun version, image digest).
A fact that cannot be read is "unknown", never an error: facts describe, they do not gate."""

from __future__ import annotations

import functools
import os
import platform
import socket
from pathlib import Path
from typing import Any, Optional

UNKNOWN = "unknown"


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_model(proc: Path = Path("/proc")) -> str:
    text = _read(proc / "cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86: "model name"; arm64: no model name, but "CPU part"/"Hardware" on some kernels.
        if key.strip() in ("model name", "Hardware", "cpu model", "cpu"):
            return value.strip()
    return platform.processor() or UNKNOWN


def turbo(sys_cpu: Path = Path("/sys/devices/system/cpu")) -> str:
    """ "on"/"off" from intel_pstate's no_turbo (inverted) or cpufreq's boost, else unknown."""
    no_turbo = _read(sys_cpu / "intel_pstate" / "no_turbo")
    if no_turbo in ("0", "1"):
        return "off" if no_turbo == "1" else "on"
    boost = _read(sys_cpu / "cpufreq" / "boost")
    if boost in ("0", "1"):
        return "on" if boost == "1" else "off"
    return UNKNOWN


def smt(sys_cpu: Path = Path("/sys/devices/system/cpu")) -> str:
    active = _read(sys_cpu / "smt" / "active")
    return {"1": "on", "0": "off"}.get(active or "", UNKNOWN)


def aslr(proc: Path = Path("/proc")) -> str:
    """randomize_va_space: "0" off, "1" conservative, "2" full."""
    return _read(proc / "sys" / "kernel" / "randomize_va_space") or UNKNOWN


@functools.lru_cache(maxsize=8)
def _static_facts(proc: Path) -> tuple[tuple[str, Any], ...]:
    """What cannot change while benchrun runs (read once: /proc/cpuinfo is slow on big hosts)."""
    from benchrun import __version__

    return (
        ("hostname", socket.gethostname()),
        ("cpu_model", cpu_model(proc)),
        ("cpu_count", os.cpu_count() or 0),
        ("kernel", platform.release() or UNKNOWN),
        ("benchrun_version", __version__),
    )


def machine_facts(
    *, proc: Path = Path("/proc"), sys_cpu: Path = Path("/sys/devices/system/cpu")
) -> dict[str, Any]:
    """The machine's facts (no per-run ones). Paths are parameters so tests can point elsewhere.
    Governor, SMT, turbo and ASLR are read every time: an administrator may change them."""
    return {
        **dict(_static_facts(proc)),
        "governor": _read(sys_cpu / "cpu0" / "cpufreq" / "scaling_governor") or UNKNOWN,
        "smt": smt(sys_cpu),
        "turbo": turbo(sys_cpu),
        "aslr": aslr(proc),
    }


def run_facts(
    backend: str, image_digest: str, host_state: Optional[dict[str, Any]] = None, **machine: Any
) -> dict[str, Any]:
    """machine_facts() plus the isolation backend and the image digest of one run, and the
    run's host measurement state (Result.facts["host_state"], benchrun.host.attest) as "state"
    when it has one (results.load() shows it as host_state_* columns)."""
    facts = machine_facts(**machine)
    facts["backend"] = backend
    facts["image_digest"] = image_digest
    if host_state is not None:
        facts["state"] = host_state
    return facts


__all__ = ["UNKNOWN", "aslr", "cpu_model", "machine_facts", "run_facts", "smt", "turbo"]
