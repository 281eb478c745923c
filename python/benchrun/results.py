"""Read a campaign results store (SQLite, schema v1) into tidy pandas DataFrames for analysis.

``load()`` returns one row per run and metric; the run's host facts (runs.host JSON) become
``host_*`` columns, so results from different machines or settings can be told apart. The store is
opened read-only: analysing a campaign never changes it, even while the campaign still writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import pandas as pd

from benchrun.errors import ConfigError

SCHEMA_VERSION = 1

# The columns of load(), in order; host_* columns follow them (sorted by name).
COLUMNS = (
    "campaign",
    "campaign_name",
    "run",
    "variant",
    "repetition",
    "warmup",
    "plan_index",
    "status",
    "backend",
    "image_digest",
    "started",
    "benchmark",
    "measure",
    "value",
    "lower",
    "upper",
    "unit",
    "source",
)

StorePath = Union[str, "os.PathLike[str]"]


def _connect(store: StorePath) -> sqlite3.Connection:
    path = Path(store)
    if not path.is_file():
        raise ConfigError(f"results store '{path}': no such file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"results store '{path}': not a benchrun results store ({e})") from e
    version = row[0] if row else None
    if version != SCHEMA_VERSION:
        conn.close()
        raise ConfigError(
            f"results store '{path}': schema version {version!r}, this benchrun reads "
            f"{SCHEMA_VERSION} (hint: use the benchrun version that wrote it)"
        )
    return conn


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}", v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def host_columns(host_json: Optional[str], prefix: str = "host") -> dict[str, Any]:
    """Flattens host JSON: ``{"cpu_model": ..., "os": {"kernel": ...}}`` ->
    ``{"host_cpu_model": ..., "host_os_kernel": ...}`` (lists are kept as JSON text)."""
    out: dict[str, Any] = {}
    if host_json:
        try:
            host = json.loads(host_json)
        except ValueError:
            host = None
        if isinstance(host, Mapping):
            _flatten(prefix, host, out)
    return out


def load(
    store: StorePath,
    campaign: Optional[str] = None,
    *,
    include_warmup: bool = False,
    include_failed: bool = False,
) -> pd.DataFrame:
    """The store's metrics as a tidy DataFrame: one row per run and metric.

    Columns: ``COLUMNS`` (``started`` in unix seconds, ``warmup`` a bool), then the run's host
    facts as ``host_*`` columns (``host_cpu_model``, ``host_kernel``, ``host_governor``, ...). ``campaign``
    (an id, or a name when no id matches) selects one campaign, default all. Warm-up runs and
    failed runs are left out unless asked for: they would skew the statistics.
    """
    with closing(_connect(store)) as conn:
        where, params = [], []
        if campaign is not None:
            where.append("r.campaign = ?")
            params.append(_campaign_id(conn, store, campaign))
        if not include_warmup:
            where.append("r.warmup = 0")
        if not include_failed:
            where.append("r.status = 'done'")
        sql = (
            "SELECT r.campaign, c.name AS campaign_name, r.id AS run, r.variant, r.repetition,"
            " r.warmup, r.plan_index, r.status, r.backend, r.image_digest, r.started,"
            " m.benchmark, m.measure, m.value, m.lower, m.upper, m.unit, m.source, r.host"
            " FROM runs r JOIN metrics m ON m.run = r.id"
            " LEFT JOIN campaigns c ON c.id = r.campaign"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY c.created, r.campaign, r.plan_index, r.id, m.benchmark, m.measure"
        )
        rows = conn.execute(sql, params).fetchall()
    host_cache: dict[Optional[str], dict[str, Any]] = {}
    records = []
    for row in rows:
        record = dict(zip(COLUMNS, row[:-1]))
        host_json = row[-1]
        if host_json not in host_cache:
            host_cache[host_json] = host_columns(host_json)
        record.update(host_cache[host_json])
        records.append(record)
    df = pd.DataFrame.from_records(records)
    host = sorted({k for h in host_cache.values() for k in h})
    df = df.reindex(columns=[*COLUMNS, *host])
    for col in ("value", "lower", "upper", "started"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("repetition", "plan_index"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["warmup"] = df["warmup"].fillna(0).astype(bool)
    return df


def _campaign_id(conn: sqlite3.Connection, store: StorePath, campaign: str) -> str:
    if conn.execute("SELECT 1 FROM campaigns WHERE id = ?", (campaign,)).fetchone():
        return campaign
    ids = [r[0] for r in conn.execute("SELECT id FROM campaigns WHERE name = ?", (campaign,))]
    if len(ids) == 1:
        return str(ids[0])
    if ids:
        raise ConfigError(
            f"campaign '{campaign}' in '{store}': the name matches {len(ids)} campaigns "
            f"(hint: give one of the ids: {', '.join(ids)})"
        )
    raise ConfigError(f"campaign '{campaign}' in '{store}': no campaign has this id or name")


def campaigns(store: StorePath) -> pd.DataFrame:
    """One row per campaign: id, name, seed, created (unix seconds), benchrun_version, the run
    counts (runs, done, failed, warmup), spec (the parsed JSON) and the host facts as host_*."""
    with closing(_connect(store)) as conn:
        rows = conn.execute(
            "SELECT c.id, c.name, c.seed, c.created, c.benchrun_version, c.spec, c.host,"
            " COUNT(r.id), COALESCE(SUM(r.status = 'done'), 0),"
            " COALESCE(SUM(r.status = 'failed'), 0), COALESCE(SUM(r.warmup = 1), 0)"
            " FROM campaigns c LEFT JOIN runs r ON r.campaign = c.id"
            " GROUP BY c.id ORDER BY c.created, c.id"
        ).fetchall()
    records = []
    for cid, name, seed, created, version, spec, host, n, done, failed, warm in rows:
        try:
            spec_doc = json.loads(spec) if spec else None
        except ValueError:
            spec_doc = spec
        records.append(
            {
                "id": cid,
                "name": name,
                "seed": seed,
                "created": created,
                "benchrun_version": version,
                "runs": n,
                "done": done,
                "failed": failed,
                "warmup": warm,
                "spec": spec_doc,
                **host_columns(host),
            }
        )
    base = [
        "id",
        "name",
        "seed",
        "created",
        "benchrun_version",
        "runs",
        "done",
        "failed",
        "warmup",
        "spec",
    ]
    df = pd.DataFrame.from_records(records)
    host_cols = sorted(c for c in df.columns if c not in base)
    return df.reindex(columns=[*base, *host_cols])
