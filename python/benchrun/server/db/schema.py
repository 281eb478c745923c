"""The job server's schema as numbered migrations, shared by the SQLite and PostgreSQL backends.

Design: one list of steps in the SQL subset both engines accept (TEXT, INTEGER, BOOLEAN, DOUBLE
PRECISION, descending index keys); a step may give per-dialect text where they differ. Conventions:
UUIDs are TEXT, JSON is TEXT (json.dumps, ASCII-escaped), times are DOUBLE PRECISION unix seconds,
and a runner's `archived` is the time it was archived (NULL = active, as upstream). Migrations are
append-only: never edit a released step, add the next version. The backends apply the missing steps
in one transaction and record each in schema_version; PostgreSQL first takes a transaction-scoped
advisory lock so server processes starting together apply each step exactly once, SQLite gets the
same from BEGIN IMMEDIATE (one writer per file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

DIALECTS = ("sqlite", "postgresql")

# pg_advisory_xact_lock key for migrations: "benchrun" in ASCII as a (positive) 64-bit integer, a
# constant no other application sharing the database is likely to use.
PG_MIGRATION_LOCK = 0x62656E636872756E

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied DOUBLE PRECISION NOT NULL
)"""

Statement = Union[str, Mapping[str, str]]  # portable text, or {dialect: text}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    steps: tuple[Statement, ...]

    def statements(self, dialect: str) -> list[str]:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r}")
        out = []
        for step in self.steps:
            text = step if isinstance(step, str) else step.get(dialect)
            if text:  # a dialect may skip a step by omitting it
                out.append(text)
        return out


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "projects, tokens, runners, jobs",
        (
            """CREATE TABLE projects (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created DOUBLE PRECISION NOT NULL
        )""",
            """CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            admin BOOLEAN NOT NULL,
            projects TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL
        )""",
            """CREATE TABLE runners (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            key_hash TEXT NOT NULL UNIQUE,
            projects TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION,
            archived DOUBLE PRECISION
        )""",
            """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects (id),
            status INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            spec TEXT NOT NULL,
            config TEXT NOT NULL,
            timeout INTEGER NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            runner TEXT REFERENCES runners (id),
            claimed DOUBLE PRECISION,
            started DOUBLE PRECISION,
            ended DOUBLE PRECISION,
            last_heartbeat DOUBLE PRECISION,
            results TEXT,
            error TEXT,
            reason TEXT,
            timings TEXT NOT NULL
        )""",
            # The claim query's order: the best pending job is the first index entry of status 0.
            "CREATE INDEX jobs_claim ON jobs (status, priority DESC, created, id)",
            # Listing a project's jobs newest first; in-flight sweeps use jobs_claim (status).
            "CREATE INDEX jobs_project_created ON jobs (project, created DESC)",
            "CREATE INDEX jobs_runner ON jobs (runner)",
        ),
    ),
    Migration(
        2,
        "jobs.claim: the claim a runner's results answer",
        # A fresh UUID per claim, handed to the runner in the `job` message; a result or heartbeat
        # naming another claim (or none, where one is required) changes nothing.
        ("ALTER TABLE jobs ADD COLUMN claim TEXT",),
    ),
    Migration(
        3,
        "jobs.host_state: the attestation of the host a job ran on",
        # The runner's `host_state` extension on completed/failed (benchrun.host.attestation), a
        # JSON object; NULL for jobs that have none (older or upstream runners, canceled jobs).
        ("ALTER TABLE jobs ADD COLUMN host_state TEXT",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def pending(current: int) -> list[Migration]:
    """The migrations after version `current`, in order."""
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)), "migration versions must increase"
    return [m for m in MIGRATIONS if m.version > current]
