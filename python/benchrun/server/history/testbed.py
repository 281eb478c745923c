"""Testbed fingerprints: results are compared only within one testbed, the host identity the
agent reports (benchrun.agent.testbed): CPU model, microcode, kernel, architecture, CPU count,
SMT, turbo, governor, tuning state and backend. The fingerprint is the SHA-256 of those facts in
canonical JSON; facts that describe but do not identify (the noise score) are left out."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Optional

IDENTITY = (
    "cpu_model",
    "microcode",
    "kernel",
    "arch",
    "cpu_count",
    "smt",
    "turbo",
    "governor",
    "tuned",
    "backend",
)


def fingerprint(facts: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the identity facts (missing ones count as null); facts without any of
    them (a testbed named by an upload, an agent that sent none) are identified by all they
    have."""
    ident = {k: facts.get(k) for k in IDENTITY}
    if all(v is None for v in ident.values()):
        ident = dict(facts)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def job_facts(testbed: Optional[Mapping[str, Any]], runner_name: str) -> dict[str, Any]:
    """The facts of a job's testbed: the agent's `testbed` extension, or (an upstream runner or an
    older agent that sent none) only the runner's name, so its results still form their own
    testbed instead of mixing with others."""
    if testbed:
        return dict(testbed)
    return {"runner": runner_name}


def fingerprint_of_job(testbed: Optional[Mapping[str, Any]], runner_name: str) -> str:
    return fingerprint(job_facts(testbed, runner_name))


def noise_score(facts: Mapping[str, Any]) -> Optional[float]:
    v = facts.get("noise_score")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
