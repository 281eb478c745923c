"""JSON responses and the one error mapping for HTTP: every error the server returns is
`{"error": "<one line>"}` with the right status, whatever raised it."""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from benchrun.errors import BenchrunError, ConfigError, ImageError, ProtocolError, RegistryError
from benchrun.jobs import safejson

log = logging.getLogger("benchrun.server")

JSON = "application/json"


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=safejson.dumps(doc, separators=(",", ":")), status=status, content_type=JSON
    )


def http_error(status: int, message: str, **headers: str) -> web.HTTPException:
    """An aiohttp HTTP exception whose body is {"error": message}."""
    cls = _ERROR_CLASSES.get(status)
    if cls is None:
        # aiohttp's own classes for 405/413 need extra constructor arguments; one small class per
        # status keeps every error the same shape.
        cls = _ERROR_CLASSES[status] = type(
            f"HTTPError{status}", (web.HTTPException,), {"status_code": status}
        )
    return cls(text=json.dumps({"error": message}), content_type=JSON, headers=headers or None)


_ERROR_CLASSES: dict[int, type[web.HTTPException]] = {}


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is {})."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = safejson.loads(raw)  # nesting <= 64, finite 64-bit numbers
    except ProtocolError as e:
        raise http_error(400, f"request body: {e}") from None
    if not isinstance(doc, dict):
        raise http_error(400, "request body: expected a JSON object")
    return doc


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != JSON:  # aiohttp's own 404/405/413 are text
            raise http_error(e.status, e.reason) from None
        raise
    except (ConfigError, ProtocolError) as e:
        raise http_error(400, str(e)) from None
    except (ImageError, RegistryError) as e:
        raise http_error(422, str(e)) from None
    except BenchrunError as e:
        log.warning("%s %s: %s", request.method, request.path, e)
        raise http_error(500, str(e)) from None
    except Exception as e:  # noqa: BLE001 - the boundary: log with traceback, answer JSON
        log.exception("%s %s: unexpected error", request.method, request.path)
        raise http_error(500, f"internal error: {type(e).__name__}") from None
