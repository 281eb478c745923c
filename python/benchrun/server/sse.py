"""Live events as Server-Sent Events: GET /v0/events[?project=ID] streams job status changes and
heartbeats of the projects the token can see, with a comment line every few seconds so proxies
keep the connection open. The stream ends when the client goes away or the server shuts down."""

from __future__ import annotations

import asyncio
from typing import Optional

from aiohttp import web

from benchrun.jobs import safejson
from benchrun.jobs.protocol import STATUS_NAMES
from benchrun.server import auth
from benchrun.server.db.base import Event
from benchrun.server.http import http_error
from benchrun.server.openapi import Route
from benchrun.server.state import STATE_KEY, ServerState


def format_event(ev: Event) -> bytes:
    if ev.kind == "alert":  # an alert was created or changed state (docs/history.md)
        from benchrun.server.history.store import ALERT_STATES

        alert = {
            "kind": ev.kind,
            "alert": ev.job,
            "project": ev.project,
            "state": ALERT_STATES[ev.status] if 0 <= ev.status < len(ALERT_STATES) else None,
            "at": ev.at,
        }
        return f"event: alert\ndata: {safejson.dumps(alert, separators=(',', ':'))}\n\n".encode()
    data = {
        "kind": ev.kind,
        "job": ev.job,
        "project": ev.project,
        "status": ev.status,
        "status_name": STATUS_NAMES[ev.status] if 0 <= ev.status < len(STATUS_NAMES) else None,
        "at": ev.at,
    }
    return f"event: {ev.kind}\ndata: {safejson.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    principal = await auth.user(request, state.db)
    project = request.query.get("project") or None
    if project is not None and not principal.can_see(project):
        raise http_error(404, f"project '{project[:64]}' not found")
    visible: Optional[set[str]] = (
        {project} if project else (None if principal.admin else set(principal.projects))
    )

    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    sub = state.hub.subscribe()
    try:
        await resp.prepare(request)
        await resp.write(b": connected\n\n")
        keepalive = state.config.sse_keepalive
        while not state.shutting_down:
            try:
                async with asyncio.timeout(keepalive):
                    ev = await sub.get()
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if ev is None:  # the server is shutting down, or this client fell too far behind
                break
            if visible is None or ev.project in visible:
                await resp.write(format_event(ev))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away (aiohttp usually cancels the handler instead)
    finally:
        state.hub.unsubscribe(sub)
    return resp


ROUTE = Route(
    "GET",
    "/v0/events",
    events,
    "Live job status changes, heartbeats and alerts (Server-Sent Events)",
    "user",
    media="text/event-stream",
    errors=(404,),
    query=(("project", "string", "only this project's events"),),
)
