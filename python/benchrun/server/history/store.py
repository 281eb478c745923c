"""The history tables (schema migration 4) over Database.fetch/write: one SQL text for SQLite and
PostgreSQL (`?` marks, ON CONFLICT upserts, RETURNING). Every lookup takes the project, so a
caller that checked the token's project can never reach another project's rows by id."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from benchrun.server.db import rows
from benchrun.server.db.base import Database

# Alert states (alerts.state): an alert is raised (open) only once its confirmation agrees.
CONFIRMING, OPEN, CONFIRMED, DISMISSED, NOISE = range(5)
ALERT_STATES = ("confirming", "open", "confirmed", "dismissed", "noise")


def _load(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Testbed:
    id: str
    project: str
    name: str
    fingerprint: str
    facts: dict[str, Any]
    runner: Optional[str]
    created: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "facts": self.facts,
            "runner": self.runner,
            "created": self.created,
        }


@dataclass(frozen=True)
class Series:
    id: str
    project: str
    branch: str
    testbed: str
    benchmark: str
    measure: str
    unit: Optional[str]
    created: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "branch": self.branch,
            "testbed": self.testbed,
            "benchmark": self.benchmark,
            "measure": self.measure,
            "unit": self.unit,
            "created": self.created,
        }


@dataclass(frozen=True)
class Point:
    id: str
    series: str
    revision: str
    value: float
    lower: Optional[float]
    upper: Optional[float]
    samples: list[float]
    at: float
    source: str  # "job:<id>" or "upload:<id>"
    job: Optional[str]
    runner: Optional[str]
    rerun: Optional[dict[str, Any]]  # a job recipe that reproduces this point (uploads)
    noise: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "revision": self.revision,
            "value": self.value,
            "lower_value": self.lower,
            "upper_value": self.upper,
            "n": len(self.samples),
            "samples": self.samples,
            "at": self.at,
            "source": self.source.split(":", 1)[0],
            "job": self.job,
            "runner": self.runner,
            "noise": self.noise,
        }


@dataclass(frozen=True)
class AlertConfig:
    id: str
    project: str
    branch: str
    benchmark: str  # "" = every benchmark
    measure: str
    model: Optional[str]  # a threshold model (benchrun.changes.thresholds.MODELS) or None
    params: dict[str, Any]  # window, min_sample, upper, lower; alpha, min_size for change points
    change_points: bool
    repetitions: Optional[int]  # per side of a confirmation; None = from the runner's noise
    created: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "branch": self.branch,
            "benchmark": self.benchmark or None,
            "measure": self.measure,
            "model": self.model,
            "params": self.params,
            "change_points": self.change_points,
            "repetitions": self.repetitions,
            "created": self.created,
        }


@dataclass(frozen=True)
class Alert:
    id: str
    project: str
    series: str
    point: str
    kind: str  # "threshold:<model>" | "change_point"
    state: int
    base_revision: Optional[str]
    head_revision: str
    base_value: Optional[float]
    head_value: float
    detail: dict[str, Any]
    confirmation: Optional[dict[str, Any]]
    created: float
    updated: float

    @property
    def state_name(self) -> str:
        return ALERT_STATES[self.state]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "series": self.series,
            "point": self.point,
            "kind": self.kind,
            "state": self.state_name,
            "base_revision": self.base_revision,
            "head_revision": self.head_revision,
            "base_value": self.base_value,
            "head_value": self.head_value,
            "detail": self.detail,
            "confirmation": self.confirmation,
            "created": self.created,
            "updated": self.updated,
        }


def _testbed(r: dict[str, Any]) -> Testbed:
    return Testbed(
        r["id"],
        r["project"],
        r["name"],
        r["fingerprint"],
        json.loads(r["facts"]),
        r["runner"],
        r["created"],
    )


def _series(r: dict[str, Any]) -> Series:
    return Series(
        r["id"],
        r["project"],
        r["branch"],
        r["testbed"],
        r["benchmark"],
        r["measure"],
        r["unit"],
        r["created"],
    )


def _point(r: dict[str, Any]) -> Point:
    return Point(
        r["id"],
        r["series"],
        r["revision"],
        r["value"],
        r["lower_value"],
        r["upper_value"],
        json.loads(r["samples"]),
        r["at"],
        r["source"],
        r["job"],
        r["runner"],
        _load(r["rerun"]),
        bool(r["noise"]),
    )


def _config(r: dict[str, Any]) -> AlertConfig:
    return AlertConfig(
        r["id"],
        r["project"],
        r["branch"],
        r["benchmark"],
        r["measure"],
        r["model"] or None,
        json.loads(r["params"]),
        bool(r["change_points"]),
        r["repetitions"],
        r["created"],
    )


def _alert(r: dict[str, Any]) -> Alert:
    return Alert(
        r["id"],
        r["project"],
        r["series"],
        r["point"],
        r["kind"],
        r["state"],
        r["base_revision"],
        r["head_revision"],
        r["base_value"],
        r["head_value"],
        json.loads(r["detail"]),
        _load(r["confirmation"]),
        r["created"],
        r["updated"],
    )


@dataclass(frozen=True)
class NewPoint:
    """A point to add: the series key, the value's samples and where it came from."""

    branch: str
    testbed: str  # testbed id
    benchmark: str
    measure: str
    unit: Optional[str]
    revision: str
    samples: Sequence[float]
    source: str
    at: float
    job: Optional[str] = None
    runner: Optional[str] = None
    rerun: Optional[dict[str, Any]] = None
    lower: Optional[float] = None
    upper: Optional[float] = None


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class HistoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- testbeds ---
    async def testbed(
        self,
        project: str,
        fingerprint: str,
        facts: dict[str, Any],
        name: str,
        runner: Optional[str],
    ) -> Testbed:
        """The project's testbed of this fingerprint, created (named `name`) if new."""
        res = await self.db.write(
            [
                (
                    "INSERT INTO testbeds (id, project, name, fingerprint, facts, runner, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project, fingerprint) DO NOTHING",
                    (
                        rows.new_id(),
                        project,
                        name,
                        fingerprint,
                        rows.dump(facts),
                        runner,
                        time.time(),
                    ),
                ),
                (
                    "SELECT * FROM testbeds WHERE project = ? AND fingerprint = ?",
                    (project, fingerprint),
                ),
            ]
        )
        return _testbed(res[1][0])

    async def find_testbed(self, project: str, ident: str) -> Optional[Testbed]:
        """By id, name or fingerprint (the newest of a name used twice)."""
        rs = await self.db.fetch(
            "SELECT * FROM testbeds WHERE project = ? AND (id = ? OR name = ? OR fingerprint = ?) "
            "ORDER BY created DESC LIMIT 1",
            (project, ident, ident, ident),
        )
        return _testbed(rs[0]) if rs else None

    async def list_testbeds(self, project: str) -> list[Testbed]:
        rs = await self.db.fetch(
            "SELECT * FROM testbeds WHERE project = ? ORDER BY created, id", (project,)
        )
        return [_testbed(r) for r in rs]

    # --- series and points ---
    async def add_points(
        self, project: str, points: Sequence[NewPoint]
    ) -> list[tuple[Series, Point]]:
        """Adds the points (creating their series) in one transaction; a point whose series
        already has one from the same source (a job ingested twice) is skipped. Returns the
        (series, point) pairs actually added."""
        stmts: list[tuple[str, Sequence[Any]]] = []
        for p in points:
            stmts.append(
                (
                    "INSERT INTO series (id, project, branch, testbed, benchmark, measure, unit, "
                    "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                    "(project, branch, testbed, benchmark, measure) DO NOTHING",
                    (
                        rows.new_id(),
                        project,
                        p.branch,
                        p.testbed,
                        p.benchmark,
                        p.measure,
                        p.unit,
                        time.time(),
                    ),
                )
            )
            stmts.append(
                (
                    "SELECT * FROM series WHERE project = ? AND branch = ? AND testbed = ? "
                    "AND benchmark = ? AND measure = ?",
                    (project, p.branch, p.testbed, p.benchmark, p.measure),
                )
            )
            samples = [float(x) for x in p.samples]
            stmts.append(
                (
                    "INSERT INTO points (id, series, revision, value, lower_value, upper_value, "
                    "samples, at, source, job, runner, rerun, noise) VALUES (?, (SELECT id FROM "
                    "series WHERE project = ? AND branch = ? AND testbed = ? AND benchmark = ? "
                    "AND measure = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
                    "ON CONFLICT (series, source) DO NOTHING RETURNING *",
                    (
                        rows.new_id(),
                        project,
                        p.branch,
                        p.testbed,
                        p.benchmark,
                        p.measure,
                        p.revision,
                        float(median(samples)),
                        float(p.lower if p.lower is not None else min(samples)),
                        float(p.upper if p.upper is not None else max(samples)),
                        rows.dump(samples),
                        float(p.at),
                        p.source,
                        p.job,
                        p.runner,
                        None if p.rerun is None else rows.dump(p.rerun),
                    ),
                )
            )
        res = await self.db.write(stmts)
        out = []
        for i in range(len(points)):
            series_rows, point_rows = res[3 * i + 1], res[3 * i + 2]
            if point_rows:
                out.append((_series(series_rows[0]), _point(point_rows[0])))
        return out

    async def list_series(
        self,
        project: str,
        *,
        branch: Optional[str] = None,
        testbed: Optional[str] = None,
        benchmark: Optional[str] = None,
        measure: Optional[str] = None,
    ) -> list[tuple[Series, int]]:
        """The project's series (with their point counts), filtered by what is given."""
        where, args = ["s.project = ?"], [project]
        for col, v in (
            ("branch", branch),
            ("testbed", testbed),
            ("benchmark", benchmark),
            ("measure", measure),
        ):
            if v is not None:
                where.append(f"s.{col} = ?")
                args.append(v)
        rs = await self.db.fetch(
            "SELECT s.*, (SELECT COUNT(*) FROM points WHERE points.series = s.id) AS n "
            f"FROM series s WHERE {' AND '.join(where)} "
            "ORDER BY s.branch, s.benchmark, s.measure, s.testbed",
            args,
        )
        return [(_series(r), int(r["n"])) for r in rs]

    async def get_series(self, project: str, series_id: str) -> Optional[Series]:
        rs = await self.db.fetch(
            "SELECT * FROM series WHERE project = ? AND id = ?", (project, series_id)
        )
        return _series(rs[0]) if rs else None

    async def points(self, series_id: str, *, include_noise: bool = True) -> list[Point]:
        """Oldest first (by time, then id)."""
        sql = "SELECT * FROM points WHERE series = ?"
        if not include_noise:
            sql += " AND noise = 0"
        rs = await self.db.fetch(sql + " ORDER BY at, id", (series_id,))
        return [_point(r) for r in rs]

    async def get_point(self, point_id: str) -> Optional[Point]:
        rs = await self.db.fetch("SELECT * FROM points WHERE id = ?", (point_id,))
        return _point(rs[0]) if rs else None

    async def mark_noise(self, point_id: str) -> None:
        await self.db.write([("UPDATE points SET noise = 1 WHERE id = ?", (point_id,))])

    # --- alert configurations ---
    async def set_config(
        self,
        project: str,
        *,
        branch: str,
        benchmark: str,
        measure: str,
        model: Optional[str],
        params: dict[str, Any],
        change_points: bool,
        repetitions: Optional[int],
    ) -> AlertConfig:
        """Creates or replaces the configuration of (branch, benchmark, measure)."""
        res = await self.db.write(
            [
                (
                    "DELETE FROM alert_configs WHERE project = ? AND branch = ? AND benchmark = ? "
                    "AND measure = ?",
                    (project, branch, benchmark, measure),
                ),
                (
                    "INSERT INTO alert_configs (id, project, branch, benchmark, measure, model, "
                    "params, change_points, repetitions, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?) RETURNING *",
                    (
                        rows.new_id(),
                        project,
                        branch,
                        benchmark,
                        measure,
                        model or "",
                        rows.dump(params),
                        1 if change_points else 0,
                        repetitions,
                        time.time(),
                    ),
                ),
            ]
        )
        return _config(res[1][0])

    async def list_configs(self, project: str) -> list[AlertConfig]:
        rs = await self.db.fetch(
            "SELECT * FROM alert_configs WHERE project = ? ORDER BY branch, benchmark, measure",
            (project,),
        )
        return [_config(r) for r in rs]

    async def delete_config(self, project: str, config_id: str) -> bool:
        res = await self.db.write(
            [
                (
                    "DELETE FROM alert_configs WHERE project = ? AND id = ? RETURNING id",
                    (project, config_id),
                )
            ]
        )
        return bool(res[0])

    async def configs_for(self, series: Series) -> list[AlertConfig]:
        """The configurations that watch a series: same branch and measure, the series'
        benchmark or every benchmark ("")."""
        rs = await self.db.fetch(
            "SELECT * FROM alert_configs WHERE project = ? AND branch = ? AND measure = ? "
            "AND (benchmark = ? OR benchmark = '') ORDER BY benchmark DESC",
            (series.project, series.branch, series.measure, series.benchmark),
        )
        return [_config(r) for r in rs]

    # --- alerts ---
    async def create_alert(
        self,
        series: Series,
        point: Point,
        *,
        kind: str,
        base: Optional[Point],
        detail: dict[str, Any],
    ) -> Optional[Alert]:
        """A new alert (state confirming) on `point`; None if the point already has one."""
        now = time.time()
        res = await self.db.write(
            [
                (
                    "INSERT INTO alerts (id, project, series, point, kind, state, base_revision, "
                    "head_revision, base_value, head_value, detail, confirmation, created, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) "
                    "ON CONFLICT (point) DO NOTHING RETURNING *",
                    (
                        rows.new_id(),
                        series.project,
                        series.id,
                        point.id,
                        kind,
                        CONFIRMING,
                        None if base is None else base.revision,
                        point.revision,
                        None if base is None else base.value,
                        point.value,
                        rows.dump(detail),
                        now,
                        now,
                    ),
                )
            ]
        )
        return _alert(res[0][0]) if res[0] else None

    async def update_alert(
        self,
        alert_id: str,
        *,
        from_: Sequence[int],
        to: Optional[int] = None,
        confirmation: Optional[dict[str, Any]] = None,
    ) -> Optional[Alert]:
        """Conditional: only from a state in from_; returns the alert if it changed."""
        sets: list[str] = ["updated = ?"]
        args: list[Any] = [time.time()]
        if to is not None:
            sets.append("state = ?")
            args.append(to)
        if confirmation is not None:
            sets.append("confirmation = ?")
            args.append(rows.dump(confirmation))
        marks = ", ".join("?" * len(from_))
        res = await self.db.write(
            [
                (
                    f"UPDATE alerts SET {', '.join(sets)} WHERE id = ? AND state IN ({marks}) "
                    "RETURNING *",
                    (*args, alert_id, *from_),
                )
            ]
        )
        return _alert(res[0][0]) if res[0] else None

    async def get_alert(self, project: Optional[str], alert_id: str) -> Optional[Alert]:
        """project None: any project (the server's own bookkeeping, never a request's)."""
        if project is None:
            rs = await self.db.fetch("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        else:
            rs = await self.db.fetch(
                "SELECT * FROM alerts WHERE project = ? AND id = ?", (project, alert_id)
            )
        return _alert(rs[0]) if rs else None

    async def list_alerts(
        self,
        project: str,
        *,
        state: Optional[int] = None,
        series: Optional[str] = None,
        limit: int = 100,
    ) -> list[Alert]:
        where: list[str] = ["project = ?"]
        args: list[Any] = [project]
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if series is not None:
            where.append("series = ?")
            args.append(series)
        rs = await self.db.fetch(
            f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY created DESC, id DESC "
            "LIMIT ?",
            (*args, int(limit)),
        )
        return [_alert(r) for r in rs]
