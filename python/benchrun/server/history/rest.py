"""History REST endpoints (docs/history.md): uploads of BMF results, testbeds, series as tidy
tables (JSON or CSV), alert configurations, and alerts with their confirmation. Everything is
under /v0/projects/{project}/: a token that cannot see the project gets 404 for all of it, and
ids of another project's series or alerts are 404 too (every lookup includes the project)."""

from __future__ import annotations

import csv
import io
import time
import uuid
from typing import Any, Optional

from aiohttp import web

from benchrun.errors import ConfigError
from benchrun.jobs import protocol as p
from benchrun.server import auth
from benchrun.server import rest as _rest
from benchrun.server.history import detect, ingest
from benchrun.server.history import testbed as _testbed
from benchrun.server.history.alerts import REPETITIONS_RANGE, HistoryService
from benchrun.server.history.store import (
    ALERT_STATES,
    CONFIRMED,
    CONFIRMING,
    DISMISSED,
    OPEN,
    NewPoint,
    Series,
)
from benchrun.server.http import http_error, json_response, read_json
from benchrun.server.openapi import Route
from benchrun.server.state import STATE_KEY, ServerState

TABLE_COLUMNS = (
    "series",
    "branch",
    "testbed",
    "benchmark",
    "measure",
    "unit",
    "revision",
    "value",
    "lower_value",
    "upper_value",
    "n",
    "at",
    "source",
    "job",
    "noise",
    "alerts",
)


def _state(request: web.Request) -> ServerState:
    return request.app[STATE_KEY]


def _service(state: ServerState) -> HistoryService:
    assert state.history is not None
    return state.history


async def _ctx(request: web.Request) -> tuple[ServerState, HistoryService, Any]:
    state = _state(request)
    principal = await auth.user(request, state.db)
    project = await _rest._project(state, principal, request.match_info["project"])
    return state, _service(state), project


def _q(request: web.Request, key: str) -> Optional[str]:
    v = request.query.get(key)
    if v is None or v == "":
        return None
    return ingest.name(v, f"query '{key}'")


# --- uploads ---


async def _upload_testbed(svc: HistoryService, project: str, value: Any) -> Any:
    """A testbed name (existing, or a new one named so) or an object of facts."""
    if isinstance(value, str):
        name = ingest.name(value, "upload.testbed")
        found = await svc.store.find_testbed(project, name)
        if found is not None:
            return found
        facts: dict[str, Any] = {"name": name}
        return await svc.store.testbed(project, _testbed.fingerprint(facts), facts, name, None)
    if isinstance(value, dict):
        facts = p.parse_testbed(value, "upload.testbed")  # flat scalars, bounded
        fp = _testbed.fingerprint(facts)
        given = facts.get("name")
        label = given if isinstance(given, str) else f"upload-{fp[:8]}"
        return await svc.store.testbed(project, fp, dict(facts), ingest.name(label, "name"), None)
    raise ConfigError("upload.testbed: expected a testbed name or an object of host facts")


async def upload_results(request: web.Request) -> web.Response:
    state, svc, project = await _ctx(request)
    body = await read_json(request)
    _rest._check_keys(body, {"branch", "commit", "testbed", "results", "rerun", "at"}, "upload")
    branch = ingest.name(body.get("branch"), "upload.branch")
    commit = ingest.name(body.get("commit"), "upload.commit")
    samples, bounds = ingest.upload_samples(body.get("results"), "upload.results")
    at = body.get("at", time.time())
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= 1e11:
        raise ConfigError("upload.at: expected unix seconds")
    rerun = None
    if body.get("rerun") is not None:
        if not isinstance(body["rerun"], dict):
            raise ConfigError("upload.rerun: expected a job submission object")
        spec, config, _ = await _rest.prepare_job(state, project, body["rerun"], "upload.rerun")
        rerun = {"spec": spec, "config": config.to_json(), "timeout": config.timeout}
    tb = await _upload_testbed(svc, project.id, body.get("testbed"))
    source = f"upload:{uuid.uuid4()}"
    points = [
        NewPoint(
            branch=branch,
            testbed=tb.id,
            benchmark=bench,
            measure=measure,
            unit=unit,
            revision=commit,
            samples=xs,
            source=source,
            at=float(at),
            rerun=rerun,
            lower=bounds.get((bench, measure), (None, None))[0],
            upper=bounds.get((bench, measure), (None, None))[1],
        )
        for (bench, measure), (unit, xs) in samples.items()
    ]
    added = await svc.add(project.id, points)
    alerts = []
    for series, point in added:
        alerts += [
            a.to_json()
            for a in await svc.store.list_alerts(project.id, series=series.id)
            if a.point == point.id
        ]
    return json_response(
        {
            "testbed": tb.to_json(),
            "points": [{"series": s.id, **pt.to_json()} for s, pt in added],
            "alerts": alerts,
        },
        201,
    )


# --- testbeds and series ---


async def list_testbeds(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    return json_response([t.to_json() for t in await svc.store.list_testbeds(project.id)])


async def list_series(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    testbeds = {t.id: t for t in await svc.store.list_testbeds(project.id)}
    tb = _q(request, "testbed")
    if tb is not None:
        found = await svc.store.find_testbed(project.id, tb)
        if found is None:
            return json_response([])
        tb = found.id
    found_series = await svc.store.list_series(
        project.id,
        branch=_q(request, "branch"),
        testbed=tb,
        benchmark=_q(request, "benchmark"),
        measure=_q(request, "measure"),
    )
    return json_response(
        [
            {
                **s.to_json(),
                "testbed_name": testbeds[s.testbed].name if s.testbed in testbeds else None,
                "points": n,
            }
            for s, n in found_series
        ]
    )


async def _series(svc: HistoryService, project: str, ident: str) -> Series:
    series = await svc.store.get_series(project, ident[:64])
    if series is None:
        raise http_error(404, f"series '{ident[:64]}' not found")
    return series


async def get_series(request: web.Request) -> web.StreamResponse:
    _, svc, project = await _ctx(request)
    series = await _series(svc, project.id, request.match_info["series"])
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ConfigError("query 'format': json or csv")
    tb = await svc.store.find_testbed(project.id, series.testbed)
    alerts: dict[str, list[str]] = {}
    for a in await svc.store.list_alerts(project.id, series=series.id, limit=10_000):
        alerts.setdefault(a.point, []).append(a.id)
    rows = []
    for pt in await svc.store.points(series.id):
        d = pt.to_json()
        rows.append(
            {
                "series": series.id,
                "branch": series.branch,
                "testbed": tb.name if tb else series.testbed,
                "benchmark": series.benchmark,
                "measure": series.measure,
                "unit": series.unit,
                **{k: d[k] for k in TABLE_COLUMNS if k in d},
                "samples": d["samples"],
                "alerts": alerts.get(pt.id, []),
            }
        )
    if fmt == "json":
        return json_response(
            {"series": series.to_json(), "testbed": tb.to_json() if tb else None, "rows": rows}
        )
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(TABLE_COLUMNS)
    for r in rows:
        w.writerow([";".join(r[c]) if c == "alerts" else _cell(r[c]) for c in TABLE_COLUMNS])
    return web.Response(text=out.getvalue(), content_type="text/csv")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return v


# --- alert configurations ---


async def list_configs(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    return json_response([c.to_json() for c in await svc.store.list_configs(project.id)])


async def set_config(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    body = await read_json(request)
    _rest._check_keys(
        body,
        {"branch", "benchmark", "measure", "model", "params", "change_points", "repetitions"},
        "alert_config",
    )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ConfigError("alert_config.model: expected a threshold model name or null")
    cp = body.get("change_points", False)
    if not isinstance(cp, bool):
        raise ConfigError("alert_config.change_points: expected a boolean")
    reps = body.get("repetitions")
    if reps is not None and (
        isinstance(reps, bool)
        or not isinstance(reps, int)
        or not REPETITIONS_RANGE[0] <= reps <= REPETITIONS_RANGE[1]
    ):
        raise ConfigError(f"alert_config.repetitions: an integer in {list(REPETITIONS_RANGE)}")
    params = detect.check_params(model, body.get("params") or {}, cp)
    bench = body.get("benchmark")
    cfg = await svc.store.set_config(
        project.id,
        branch=ingest.name(body.get("branch"), "alert_config.branch"),
        benchmark="" if bench is None else ingest.name(bench, "alert_config.benchmark"),
        measure=ingest.name(body.get("measure"), "alert_config.measure"),
        model=model,
        params=params,
        change_points=cp,
        repetitions=reps,
    )
    return json_response(cfg.to_json(), 201)


async def delete_config(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    ident = request.match_info["config"][:64]
    if not await svc.store.delete_config(project.id, ident):
        raise http_error(404, f"alert configuration '{ident}' not found")
    return json_response({"deleted": ident})


# --- alerts ---


def _state_filter(raw: Optional[str]) -> Optional[int]:
    if raw is None or raw == "":
        return None
    if raw in ALERT_STATES:
        return ALERT_STATES.index(raw)
    raise ConfigError(f"query 'state': one of {', '.join(ALERT_STATES)}")


async def list_alerts(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    alerts = await svc.store.list_alerts(
        project.id,
        state=_state_filter(request.query.get("state")),
        series=request.query.get("series") or None,
        limit=_rest._query_int(request, "limit", 100, 1, _rest.MAX_LIST),
    )
    return json_response([a.to_json() for a in alerts])


async def get_alert(request: web.Request) -> web.Response:
    _, svc, project = await _ctx(request)
    ident = request.match_info["alert"][:64]
    alert = await svc.store.get_alert(project.id, ident)
    if alert is None:
        raise http_error(404, f"alert '{ident}' not found")
    doc = alert.to_json()
    series = await svc.store.get_series(project.id, alert.series)
    doc["series_key"] = series.to_json() if series else None
    return json_response(doc)


async def _move(request: web.Request, to: int, from_: tuple[int, ...]) -> web.Response:
    _, svc, project = await _ctx(request)
    ident = request.match_info["alert"][:64]
    alert = await svc.store.get_alert(project.id, ident)
    if alert is None:
        raise http_error(404, f"alert '{ident}' not found")
    moved = await svc.store.update_alert(alert.id, from_=from_, to=to)
    if moved is None:
        raise http_error(
            409, f"alert '{ident}' is {alert.state_name}: cannot become {ALERT_STATES[to]}"
        )
    await svc.publish(moved)
    return json_response(moved.to_json())


async def dismiss_alert(request: web.Request) -> web.Response:
    return await _move(request, DISMISSED, (CONFIRMING, OPEN, CONFIRMED))


async def confirm_alert(request: web.Request) -> web.Response:
    return await _move(request, CONFIRMED, (OPEN,))


_P = "/v0/projects/{project}"
_SERIES_Q = (
    ("branch", "string", "only this branch"),
    ("testbed", "string", "only this testbed (id, name or fingerprint)"),
    ("benchmark", "string", "only this benchmark"),
    ("measure", "string", "only this measure"),
)

ROUTES = [
    Route(
        "POST",
        f"{_P}/history/results",
        upload_results,
        "Upload BMF results of a commit (branch, commit, testbed; optional rerun recipe)",
        "user",
        201,
        request="HistoryUpload",
        response="HistoryUploaded",
        errors=(400, 404, 422),
    ),
    Route(
        "GET",
        f"{_P}/history/testbeds",
        list_testbeds,
        "List the project's testbeds",
        "user",
        response="Testbed",
        response_array=True,
        errors=(404,),
    ),
    Route(
        "GET",
        f"{_P}/history/series",
        list_series,
        "List series (one per branch, testbed, benchmark and measure)",
        "user",
        response="Series",
        response_array=True,
        query=_SERIES_Q,
        errors=(400, 404),
    ),
    Route(
        "GET",
        f"{_P}/history/series/{{series}}",
        get_series,
        "One series as a tidy table, oldest first (format=json or csv)",
        "user",
        response="SeriesTable",
        query=(("format", "string", "json (default) or csv"),),
        errors=(400, 404),
    ),
    Route(
        "GET",
        f"{_P}/history/alert-configs",
        list_configs,
        "List alert configurations (threshold model, change points)",
        "user",
        response="AlertConfig",
        response_array=True,
        errors=(404,),
    ),
    Route(
        "PUT",
        f"{_P}/history/alert-configs",
        set_config,
        "Create or replace the alert configuration of a branch/benchmark/measure",
        "user",
        201,
        request="AlertConfigSet",
        response="AlertConfig",
        errors=(400, 404),
    ),
    Route(
        "DELETE",
        f"{_P}/history/alert-configs/{{config}}",
        delete_config,
        "Delete an alert configuration",
        "user",
        errors=(404,),
    ),
    Route(
        "GET",
        f"{_P}/alerts",
        list_alerts,
        "List alerts, newest first",
        "user",
        response="Alert",
        response_array=True,
        query=(
            ("state", "string", "|".join(ALERT_STATES)),
            ("series", "string", "one series"),
            ("limit", "integer", "at most this many"),
        ),
        errors=(400, 404),
    ),
    Route(
        "GET",
        f"{_P}/alerts/{{alert}}",
        get_alert,
        "Get an alert with its confirmation (jobs, samples, comparison)",
        "user",
        response="Alert",
        errors=(404,),
    ),
    Route(
        "POST",
        f"{_P}/alerts/{{alert}}/dismiss",
        dismiss_alert,
        "Dismiss an alert",
        "user",
        response="Alert",
        errors=(404, 409),
    ),
    Route(
        "POST",
        f"{_P}/alerts/{{alert}}/confirm",
        confirm_alert,
        "Acknowledge an open alert as a real change",
        "user",
        response="Alert",
        errors=(404, 409),
    ),
]

_NUM = {"type": "number"}
_NNUM = {"type": "number", "nullable": True}
_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_BMF = {
    "type": "object",
    "description": "Bencher Metric Format: {benchmark: {measure: {value, lower_value?, "
    "upper_value?}}}",
    "additionalProperties": {"type": "object"},
}

SCHEMAS: dict[str, Any] = {
    "HistoryUpload": {
        "type": "object",
        "required": ["branch", "commit", "testbed", "results"],
        "additionalProperties": False,
        "properties": {
            "branch": _STR,
            "commit": _STR,
            "testbed": {"oneOf": [_STR, {"type": "object"}]},
            "results": {"oneOf": [_BMF, {"type": "array", "items": _BMF}]},
            "rerun": {"$ref": "#/components/schemas/JobSubmit"},
            "at": _NUM,
        },
    },
    "HistoryUploaded": {
        "type": "object",
        "properties": {
            "testbed": {"$ref": "#/components/schemas/Testbed"},
            "points": {"type": "array", "items": {"type": "object"}},
            "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
        },
    },
    "Testbed": {
        "type": "object",
        "properties": {
            "id": _STR,
            "name": _STR,
            "fingerprint": _STR,
            "facts": {"type": "object"},
            "runner": _NSTR,
            "created": _NUM,
        },
    },
    "Series": {
        "type": "object",
        "properties": {
            "id": _STR,
            "branch": _STR,
            "testbed": _STR,
            "testbed_name": _NSTR,
            "benchmark": _STR,
            "measure": _STR,
            "unit": _NSTR,
            "created": _NUM,
            "points": {"type": "integer"},
        },
    },
    "SeriesTable": {
        "type": "object",
        "properties": {
            "series": {"$ref": "#/components/schemas/Series"},
            "testbed": {"$ref": "#/components/schemas/Testbed"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {c: {} for c in TABLE_COLUMNS + ("samples",)},
                },
            },
        },
    },
    "AlertConfigSet": {
        "type": "object",
        "required": ["branch", "measure"],
        "additionalProperties": False,
        "properties": {
            "branch": _STR,
            "benchmark": _NSTR,
            "measure": _STR,
            "model": {
                "type": "string",
                "nullable": True,
                "enum": [
                    "static",
                    "percentage",
                    "z_score",
                    "t_test",
                    "log_normal",
                    "iqr",
                    "delta_iqr",
                ],
            },
            "params": {
                "type": "object",
                "properties": {
                    k: _NUM for k in detect.THRESHOLD_PARAMS + detect.CHANGE_POINT_PARAMS
                },
            },
            "change_points": {"type": "boolean"},
            "repetitions": {
                "type": "integer",
                "minimum": REPETITIONS_RANGE[0],
                "maximum": REPETITIONS_RANGE[1],
                "nullable": True,
            },
        },
    },
    "AlertConfig": {
        "type": "object",
        "properties": {
            "id": _STR,
            "branch": _STR,
            "benchmark": _NSTR,
            "measure": _STR,
            "model": _NSTR,
            "params": {"type": "object"},
            "change_points": {"type": "boolean"},
            "repetitions": {"type": "integer", "nullable": True},
            "created": _NUM,
        },
    },
    "Alert": {
        "type": "object",
        "properties": {
            "id": _STR,
            "series": _STR,
            "point": _STR,
            "kind": _STR,
            "state": {"type": "string", "enum": list(ALERT_STATES)},
            "base_revision": _NSTR,
            "head_revision": _STR,
            "base_value": _NNUM,
            "head_value": _NUM,
            "detail": {"type": "object"},
            "confirmation": {
                "type": "object",
                "nullable": True,
                "description": "status, repetitions, order (ABBA...), runner, jobs [{id, side}], "
                "base/head samples and the comparison once decided",
            },
            "created": _NUM,
            "updated": _NUM,
        },
    },
}
