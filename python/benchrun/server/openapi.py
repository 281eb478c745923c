"""The route table and the OpenAPI 3.0 document built from it. app.py registers exactly the routes
of this table, and GET /v0/openapi.json describes exactly the same table, so the two cannot
drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp syntax, which is also OpenAPI's: /v0/jobs/{job}
    handler: Handler
    summary: str
    auth: str  # "admin" | "user" | "runner" | "none"
    status: int = 200  # success status
    request: Optional[str] = None  # component schema name of the JSON body
    response: Optional[str] = None  # component schema name of the JSON answer
    response_array: bool = False
    media: str = "application/json"  # or text/event-stream; "websocket" for the runner channel
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    errors: tuple[int, ...] = field(default=())


_SECURITY = {
    "admin": [{"userToken": []}],
    "user": [{"userToken": []}],
    "runner": [{"runnerKey": []}],
    "none": [],
}
_ERROR_TEXT = {
    400: "Invalid request",
    401: "Missing or invalid credentials",
    403: "Needs an admin token",
    404: "Not found (or not visible to this token)",
    409: "Conflicts with the job's state",
    413: "Request body too large",
    422: "The image could not be resolved",
    503: "Server shutting down",
}


def _operation(r: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", r.path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
        for n, t, d in r.query
    ]
    op: dict[str, Any] = {
        "operationId": r.handler.__name__,
        "summary": r.summary,
        "security": _SECURITY[r.auth],
        "parameters": params,
    }
    if r.auth == "admin":
        op["description"] = "Admin token only."
    if r.request:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{r.request}"}}
            },
        }
    ok: dict[str, Any] = {"description": "OK" if r.status == 200 else "Created"}
    if r.media == "websocket":
        ok = {
            "description": "Switching Protocols: Bencher's runner protocol over WebSocket "
            "(JSON text frames with an `event` tag; see docs/jobs.md)"
        }
        status = 101
    else:
        status = r.status
        if r.response:
            schema: dict[str, Any] = {"$ref": f"#/components/schemas/{r.response}"}
            if r.response_array:
                schema = {"type": "array", "items": schema}
            ok["content"] = {r.media: {"schema": schema}}
        elif r.media == "text/event-stream":
            ok["content"] = {r.media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(status): ok}
    codes = set(r.errors)
    if r.auth != "none":
        codes.add(401)
    if r.auth == "admin":
        codes.add(403)
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    op["responses"] = responses
    return op


def build_document(routes: list[Route], schemas: dict[str, Any], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "benchrun job server",
            "version": version,
            "description": "Submit benchmark jobs, read their results, administer runners. "
            "Runners speak Bencher's runner protocol on the channel route.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API token (benchrun_user_...)",
                },
                "runnerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Runner key (bencher_runner_...)",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                **schemas,
            },
        },
    }
