"""The results store: one SQLite file holding one or several campaigns, their runs, every run's
Result and metrics (schema in docs/campaigns.md; version 1). Each run is committed on its own, so
an interrupted campaign loses at most the run in flight and resumes from the store."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from benchrun.errors import ConfigError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    name TEXT,
    seed INTEGER,
    created REAL,
    spec TEXT,
    benchrun_version TEXT,
    host TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    campaign TEXT REFERENCES campaigns(id),
    variant TEXT,
    variant_spec TEXT,
    repetition INTEGER,
    warmup INTEGER,
    plan_index INTEGER,
    status TEXT,
    exit_code INTEGER,
    wall_time REAL,
    started REAL,
    ended REAL,
    backend TEXT,
    image_digest TEXT,
    host TEXT,
    result TEXT,
    error TEXT,
    UNIQUE(campaign, plan_index)
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT REFERENCES runs(id),
    benchmark TEXT,
    measure TEXT,
    value REAL,
    lower REAL,
    upper REAL,
    unit TEXT,
    source TEXT
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run);
"""

# The tidy export's columns: one row per run and metric (a run without metrics has one row with
# empty metric columns, so failures stay visible).
EXPORT_COLUMNS = (
    "campaign",
    "campaign_name",
    "run",
    "variant",
    "repetition",
    "warmup",
    "plan_index",
    "status",
    "exit_code",
    "wall_time",
    "started",
    "ended",
    "backend",
    "image_digest",
    "benchmark",
    "measure",
    "value",
    "lower",
    "upper",
    "unit",
    "source",
    "error",
)

StorePath = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class RunRecord:
    """A run as written to the runs table (metrics separately)."""

    id: str
    campaign: str
    variant: str
    variant_spec: dict[str, Any]
    repetition: int
    warmup: bool
    plan_index: int
    status: str  # "done" | "failed"
    exit_code: Optional[int]
    wall_time: Optional[float]
    started: float
    ended: float
    backend: str
    image_digest: str
    host: dict[str, Any]
    result: Optional[dict[str, Any]]
    error: Optional[str]


class ResultsStore:
    """An open results store. Creates the file and schema if missing; refuses another version."""

    def __init__(self, path: StorePath) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"open results store '{self.path}': {e}") from None
        try:
            self._init_schema()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise ConfigError(f"results store '{self.path}': {e}") from None

    def _init_schema(self) -> None:
        # WAL + synchronous=NORMAL: a commit per run without an fsync each (~20 ms on a slow
        # disk); a crash of benchrun loses nothing committed, a power cut at most the last runs.
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        with self.db:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.executescript(SCHEMA)
            rows = self.db.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                self.db.execute("INSERT INTO schema_version(version) VALUES (?)", (SCHEMA_VERSION,))
            elif rows[0][0] != SCHEMA_VERSION:
                raise ConfigError(
                    f"results store '{self.path}': schema version {rows[0][0]}; "
                    f"this benchrun reads version {SCHEMA_VERSION}"
                )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- campaigns ---
    def campaign(self, campaign_id: str) -> Optional[dict[str, Any]]:
        row = self.db.execute(
            "SELECT id, name, seed, created, spec, benchrun_version, host FROM campaigns "
            "WHERE id = ?",
            (campaign_id,),
        ).fetchone()
        return _campaign_row(row) if row else None

    def campaigns(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, name, seed, created, spec, benchrun_version, host "
            "FROM campaigns ORDER BY created"
        ).fetchall()
        return [_campaign_row(r) for r in rows]

    def add_campaign(
        self,
        campaign_id: str,
        name: str,
        seed: int,
        spec: dict[str, Any],
        benchrun_version: str,
        host: dict[str, Any],
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO campaigns(id, name, seed, created, spec, benchrun_version, host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    campaign_id,
                    name,
                    seed,
                    time.time(),
                    json.dumps(spec, sort_keys=True),
                    benchrun_version,
                    json.dumps(host, sort_keys=True),
                ),
            )

    # --- runs ---
    def done_indices(self, campaign_id: str) -> set[int]:
        rows = self.db.execute(
            "SELECT plan_index FROM runs WHERE campaign = ? AND status = 'done'", (campaign_id,)
        )
        return {int(r[0]) for r in rows}

    def counts(self, campaign_id: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT status, COUNT(*) FROM runs WHERE campaign = ? " "GROUP BY status",
            (campaign_id,),
        )
        return {str(s): int(n) for s, n in rows}

    def add_run(self, run: RunRecord, metrics: Iterable[Any] = ()) -> None:
        """Writes a run and its metrics in one transaction, replacing an earlier (failed) attempt
        at the same plan entry."""
        with self.db:
            old = self.db.execute(
                "SELECT id FROM runs WHERE campaign = ? AND plan_index = ?",
                (run.campaign, run.plan_index),
            ).fetchall()
            for (old_id,) in old:
                self.db.execute("DELETE FROM metrics WHERE run = ?", (old_id,))
                self.db.execute("DELETE FROM runs WHERE id = ?", (old_id,))
            self.db.execute(
                "INSERT INTO runs(id, campaign, variant, variant_spec, repetition, warmup, "
                "plan_index, status, exit_code, wall_time, started, ended, backend, image_digest, "
                "host, result, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.campaign,
                    run.variant,
                    json.dumps(run.variant_spec, sort_keys=True),
                    run.repetition,
                    int(run.warmup),
                    run.plan_index,
                    run.status,
                    run.exit_code,
                    run.wall_time,
                    run.started,
                    run.ended,
                    run.backend,
                    run.image_digest,
                    json.dumps(run.host, sort_keys=True),
                    json.dumps(run.result) if run.result is not None else None,
                    run.error,
                ),
            )
            self.db.executemany(
                "INSERT INTO metrics(run, benchmark, measure, value, lower, upper, unit, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run.id,
                        m.benchmark,
                        m.measure,
                        float(m.value),
                        None if m.lower is None else float(m.lower),
                        None if m.upper is None else float(m.upper),
                        m.unit,
                        m.source,
                    )
                    for m in metrics
                ],
            )

    def runs(self, campaign_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The runs (as dicts, JSON columns decoded) in plan order, of one campaign or all."""
        sql = (
            "SELECT id, campaign, variant, variant_spec, repetition, warmup, plan_index, "
            "status, exit_code, wall_time, started, ended, backend, image_digest, host, "
            "result, error FROM runs"
        )
        args: tuple[Any, ...] = ()
        if campaign_id is not None:
            sql += " WHERE campaign = ?"
            args = (campaign_id,)
        cur = self.db.execute(sql + " ORDER BY campaign, plan_index", args)
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur:
            d = dict(zip(cols, row))
            for key in ("variant_spec", "host", "result"):
                d[key] = json.loads(d[key]) if d[key] is not None else None
            d["warmup"] = bool(d["warmup"])
            out.append(d)
        return out

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT benchmark, measure, value, lower, upper, unit, source "
            "FROM metrics WHERE run = ?",
            (run_id,),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur]

    def tidy_rows(self, campaign: Optional[str] = None) -> Iterator[dict[str, Any]]:
        """One dict per run and metric (EXPORT_COLUMNS), in campaign and plan order."""
        sql = (
            "SELECT r.campaign, c.name, r.id, r.variant, r.repetition, r.warmup, r.plan_index, "
            "r.status, r.exit_code, r.wall_time, r.started, r.ended, r.backend, "
            "r.image_digest, m.benchmark, m.measure, m.value, m.lower, m.upper, m.unit, "
            "m.source, r.error FROM runs r JOIN campaigns c ON c.id = r.campaign "
            "LEFT JOIN metrics m ON m.run = r.id"
        )
        args: tuple[Any, ...] = ()
        if campaign is not None:
            sql += " WHERE r.campaign = ? OR c.name = ?"
            args = (campaign, campaign)
        for row in self.db.execute(sql + " ORDER BY c.created, r.plan_index, m.rowid", args):
            yield dict(zip(EXPORT_COLUMNS, row))


def _campaign_row(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "name": row[1],
        "seed": row[2],
        "created": row[3],
        "spec": json.loads(row[4]),
        "benchrun_version": row[5],
        "host": json.loads(row[6]),
    }


def _existing(store: StorePath) -> ResultsStore:
    if not os.path.exists(os.fspath(store)):
        raise ConfigError(f"results store '{os.fspath(store)}': no such file")
    return ResultsStore(store)


def export_csv(store: StorePath, path: StorePath, campaign: Optional[str] = None) -> int:
    """Writes the tidy table (one row per run and metric; EXPORT_COLUMNS) of one campaign (id or
    name) or all to ``path``; returns the number of rows."""
    with _existing(store) as s:
        rows = list(s.tidy_rows(campaign))
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({**r, "warmup": int(bool(r["warmup"]))})
    except OSError as e:
        raise ConfigError(f"write '{os.fspath(path)}': {e.strerror or e}") from None
    return len(rows)


def export_parquet(store: StorePath, path: StorePath, campaign: Optional[str] = None) -> int:
    """As export_csv, as Parquet (needs pyarrow; ConfigError if it is not installed)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "pyarrow is not installed (needed for Parquet export; CSV works " "without it)"
        ) from None
    with _existing(store) as s:
        rows = list(s.tidy_rows(campaign))
    types = {
        "repetition": pa.int64(),
        "plan_index": pa.int64(),
        "exit_code": pa.int64(),
        "warmup": pa.bool_(),
        "wall_time": pa.float64(),
        "started": pa.float64(),
        "ended": pa.float64(),
        "value": pa.float64(),
        "lower": pa.float64(),
        "upper": pa.float64(),
    }
    schema = pa.schema([(c, types.get(c, pa.string())) for c in EXPORT_COLUMNS])
    cols = {c: [bool(r[c]) if c == "warmup" else r[c] for r in rows] for c in EXPORT_COLUMNS}
    pq.write_table(pa.table(cols, schema=schema), os.fspath(path))
    return len(rows)


__all__ = [
    "EXPORT_COLUMNS",
    "RunRecord",
    "ResultsStore",
    "SCHEMA_VERSION",
    "export_csv",
    "export_parquet",
]
