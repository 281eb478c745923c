"""The testbed facts an agent sends with each result (benchrun's `testbed` extension): what makes
two results comparable in the server's history — CPU model, microcode, kernel, SMT, the tuning
state (benchrun.host.attestation), the backend that ran the job, and the runner's noise score
where `benchrun host noise` measured one. The server hashes the identity part into the testbed
fingerprint (benchrun.server.history.testbed); results of different testbeds are never mixed."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping, Optional

from benchrun.campaign.host import UNKNOWN, cpu_model, machine_facts

_PROC = Path("/proc")


def microcode(proc: Path = _PROC) -> str:
    """The CPU microcode revision of the first CPU (x86 /proc/cpuinfo "microcode"), else unknown."""
    try:
        text = (proc / "cpuinfo").read_text()
    except OSError:
        return UNKNOWN
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "microcode":
            return value.strip()
    return UNKNOWN


def testbed_facts(
    backend: str, host_state: Optional[Mapping[str, Any]] = None, *, proc: Path = _PROC
) -> dict[str, Any]:
    """The flat facts dict (strings, numbers, booleans, nulls) of this host for one job."""
    facts = machine_facts(proc=proc)
    tuned = host_state.get("tuned") if host_state else None
    noise = host_state.get("noise") if host_state else None
    score = noise.get("score") if isinstance(noise, Mapping) else None
    return {
        "cpu_model": cpu_model(proc),
        "microcode": microcode(proc),
        "kernel": platform.release() or UNKNOWN,
        "arch": platform.machine() or UNKNOWN,
        "cpu_count": facts.get("cpu_count", 0),
        "smt": facts.get("smt", UNKNOWN),
        "turbo": facts.get("turbo", UNKNOWN),
        "governor": facts.get("governor", UNKNOWN),
        "tuned": tuned if isinstance(tuned, bool) else None,
        "backend": backend,
        # Not part of the identity (the server leaves it out of the fingerprint): the runner's
        # noise figure, used to size confirmation re-runs.
        "noise_score": float(score) if isinstance(score, (int, float)) else None,
    }
