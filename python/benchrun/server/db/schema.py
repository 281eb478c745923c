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
    Migration(
        4,
        "history: per-iteration metrics, testbeds, series, points, alert configs, alerts",
        (
            # The agent's per-iteration measurements ({"metrics": {name: {value, unit}}, "start",
            # "end"} per iteration, benchrun extension `iterations`), its testbed fingerprint facts
            # (`testbed`), and the runner a job is pinned to (confirmation jobs; NULL = any).
            "ALTER TABLE jobs ADD COLUMN iterations TEXT",
            "ALTER TABLE jobs ADD COLUMN testbed TEXT",
            "ALTER TABLE jobs ADD COLUMN pin_runner TEXT",
            # A testbed is a host fingerprint (CPU model, microcode, kernel, SMT, tuning, backend)
            # per project: fingerprint = SHA-256 of the canonical facts.
            """CREATE TABLE testbeds (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects (id),
            name TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            facts TEXT NOT NULL,
            runner TEXT,
            created DOUBLE PRECISION NOT NULL,
            UNIQUE (project, fingerprint)
        )""",
            """CREATE TABLE series (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects (id),
            branch TEXT NOT NULL,
            testbed TEXT NOT NULL REFERENCES testbeds (id),
            benchmark TEXT NOT NULL,
            measure TEXT NOT NULL,
            unit TEXT,
            created DOUBLE PRECISION NOT NULL,
            UNIQUE (project, branch, testbed, benchmark, measure)
        )""",
            # One result of one commit: value (the median of its samples), the samples (JSON list),
            # where it came from (a job, an upload), and noise = 1 once a confirmation re-run
            # did not reproduce it (excluded from detection, still shown).
            """CREATE TABLE points (
            id TEXT PRIMARY KEY,
            series TEXT NOT NULL REFERENCES series (id),
            revision TEXT NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            lower_value DOUBLE PRECISION,
            upper_value DOUBLE PRECISION,
            samples TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL,
            job TEXT,
            runner TEXT,
            rerun TEXT,
            noise INTEGER NOT NULL,
            UNIQUE (series, source)
        )""",
            "CREATE INDEX points_series_at ON points (series, at, id)",
            """CREATE TABLE alert_configs (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects (id),
            branch TEXT NOT NULL,
            benchmark TEXT NOT NULL,
            measure TEXT NOT NULL,
            model TEXT NOT NULL,
            params TEXT NOT NULL,
            change_points INTEGER NOT NULL,
            repetitions INTEGER,
            created DOUBLE PRECISION NOT NULL,
            UNIQUE (project, branch, benchmark, measure)
        )""",
            # state: 0 confirming, 1 open, 2 confirmed, 3 dismissed, 4 noise (not raised).
            """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL REFERENCES projects (id),
            series TEXT NOT NULL REFERENCES series (id),
            point TEXT NOT NULL REFERENCES points (id),
            kind TEXT NOT NULL,
            state INTEGER NOT NULL,
            base_revision TEXT,
            head_revision TEXT NOT NULL,
            base_value DOUBLE PRECISION,
            head_value DOUBLE PRECISION NOT NULL,
            detail TEXT NOT NULL,
            confirmation TEXT,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            UNIQUE (point)
        )""",
            "CREATE INDEX alerts_project_created ON alerts (project, created DESC)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def pending(current: int) -> list[Migration]:
    """The migrations after version `current`, in order."""
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)), "migration versions must increase"
    return [m for m in MIGRATIONS if m.version > current]
