"""Row <-> dataclass conversion and input checks shared by both backends (rows are sqlite3.Row or
asyncpg.Record: both index by column name)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Mapping, Optional

from benchrun.errors import ConfigError
from benchrun.jobs.protocol import CLAIMED, RUNNING, TERMINAL_STATUSES
from benchrun.server.db.base import Event, Job, Principal, Project, Runner

JOB_COLUMNS = (
    "id",
    "project",
    "status",
    "priority",
    "spec",
    "config",
    "timeout",
    "created",
    "runner",
    "claimed",
    "started",
    "ended",
    "last_heartbeat",
    "results",
    "error",
    "reason",
    "timings",
    "claim",
    "host_state",
    "iterations",
    "testbed",
    "pin_runner",
)
IN_FLIGHT = (CLAIMED, RUNNING)
RUNNER_NAME = re.compile(r"^[a-z0-9-]{1,64}$")

# NOTIFY channels (PostgreSQL); the SQLite backend uses the same payloads in process.
WORK_CHANNEL = "benchrun_work"
EVENTS_CHANNEL = "benchrun_events"
# A runner's key was rotated or the runner deleted (payload: the runner id): every process closes
# that runner's channels whose key is no longer current.
RUNNERS_CHANNEL = "benchrun_runners"


def dump(value: Any) -> str:
    # ASCII escapes keep lone surrogates (utf8-lossy output gone wrong) and NUL storable as TEXT.
    # allow_nan=False: NaN/Infinity are not JSON; storing them would serve non-standard JSON.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def new_id() -> str:
    return str(uuid.uuid4())


def check_runner_name(name: str) -> str:
    if not isinstance(name, str) or not RUNNER_NAME.match(name):
        raise ConfigError(f"runner name {name!r:.80}: use 1-64 characters [a-z0-9-]")
    try:
        uuid.UUID(name)
    except ValueError:
        return name
    raise ConfigError(f"runner name {name!r}: must not be a UUID (runners are found by id or name)")


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ConfigError(f"project name {name!r:.80}: use 1-255 characters")
    return name


def check_projects(projects: Any) -> tuple[str, ...]:
    if isinstance(projects, str) or not all(isinstance(p, str) for p in projects):
        raise ConfigError("projects: expected a sequence of project ids")
    return tuple(dict.fromkeys(projects))  # drop duplicates, keep order


def is_terminal(status: int) -> bool:
    return status in TERMINAL_STATUSES


def project_from_row(r: Mapping[str, Any]) -> Project:
    return Project(id=r["id"], name=r["name"], created=r["created"])


def principal_from_row(r: Mapping[str, Any]) -> Principal:
    return Principal(
        token_id=r["id"],
        name=r["name"],
        admin=bool(r["admin"]),
        projects=tuple(json.loads(r["projects"])),
    )


def runner_from_row(r: Mapping[str, Any]) -> Runner:
    return Runner(
        id=r["id"],
        name=r["name"],
        projects=tuple(json.loads(r["projects"])),
        created=r["created"],
        last_seen=r["last_seen"],
        archived=r["archived"] is not None,
    )


def job_from_row(r: Mapping[str, Any]) -> Job:
    results, host_state = r["results"], r["host_state"]
    return Job(
        id=r["id"],
        project=r["project"],
        status=r["status"],
        priority=r["priority"],
        spec=json.loads(r["spec"]),
        config=json.loads(r["config"]),
        timeout=r["timeout"],
        created=r["created"],
        runner=r["runner"],
        claimed=r["claimed"],
        started=r["started"],
        ended=r["ended"],
        last_heartbeat=r["last_heartbeat"],
        results=None if results is None else json.loads(results),
        error=r["error"],
        reason=r["reason"],
        timings=json.loads(r["timings"]),
        claim=r["claim"],
        host_state=None if host_state is None else json.loads(host_state),
        iterations=_json_or_none(r["iterations"]),
        testbed=_json_or_none(r["testbed"]),
        pin_runner=r["pin_runner"],
    )


def _json_or_none(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


def event_of(kind: str, job: Job, at: float) -> Event:
    return Event(kind=kind, job=job.id, project=job.project, status=job.status, at=at)


def event_to_json(event: Event) -> str:
    return dump(
        {
            "kind": event.kind,
            "job": event.job,
            "project": event.project,
            "status": event.status,
            "at": event.at,
        }
    )


def event_from_json(payload: str) -> Optional[Event]:
    """None for a payload this version does not understand (a newer server sharing the database)."""
    try:
        d = json.loads(payload)
        return Event(
            kind=str(d["kind"]),
            job=str(d["job"]),
            project=str(d["project"]),
            status=int(d["status"]),
            at=float(d["at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
