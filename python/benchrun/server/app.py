"""`benchrun serve`: the aiohttp application (routes from one table), its background tasks (event
hub, liveness sweeper that also recovers in-flight jobs at startup), first-start admin token, and
the process lifecycle (SIGTERM/SIGINT: stop accepting, close channels with 1001 "server shutting
down", leave in-flight jobs to their runners, exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from typing import Callable, Optional

from aiohttp import WSCloseCode, web

from benchrun.errors import BenchrunError, ConfigError
from benchrun.jobs.protocol import CANCELED
from benchrun.server import channel, rest, sse
from benchrun.server.config import ServerConfig
from benchrun.server.db.base import Database, Event
from benchrun.server.events import EventHub
from benchrun.server.history import rest as history_rest
from benchrun.server.history.alerts import HistoryService
from benchrun.server.http import error_middleware, json_response
from benchrun.server.liveness import sweeper
from benchrun.server.openapi import Route, build_document
from benchrun.server.state import STATE_KEY, ServerState

log = logging.getLogger("benchrun.server")

ROUTES_KEY = "benchrun.routes"
_TASKS_KEY = "benchrun.tasks"
SHUTDOWN_REASON = b"server shutting down"


def _version() -> str:
    try:
        from benchrun import __version__

        return str(__version__)
    except ImportError:  # the compiled core is missing: the server itself does not need it
        return "0"


async def openapi_document(request: web.Request) -> web.Response:
    schemas = {**rest.SCHEMAS, **history_rest.SCHEMAS}
    return json_response(build_document(request.app[ROUTES_KEY], schemas, _version()))


ROUTES: list[Route] = [
    *rest.ROUTES,
    *history_rest.ROUTES,
    sse.ROUTE,
    Route(
        "GET",
        "/v0/runners/{runner}/channel",
        channel.channel_handler,
        "Runner channel: WebSocket upgrade (Bencher's runner protocol)",
        "runner",
        media="websocket",
        errors=(503,),
    ),
    Route("GET", "/v0/openapi.json", openapi_document, "This OpenAPI document", "none"),
]


def make_app(db: Database, config: ServerConfig) -> web.Application:
    """The server application over an opened, migrated database (the caller closes it)."""
    app = web.Application(middlewares=[error_middleware], logger=log)
    state = ServerState(db=db, config=config, hub=EventHub(db))
    state.history = HistoryService(db)
    app[STATE_KEY] = state
    app[ROUTES_KEY] = ROUTES
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler, name=r.handler.__name__)
    app.on_startup.append(_start_background)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_stop_background)
    return app


def _cancel_listener(state: ServerState) -> Callable[[Event], None]:
    def on_event(ev: Event) -> None:
        # A job canceled anywhere (REST on another server process, a sweep) reaches the channel
        # executing it in this process.
        if ev.kind == "job" and ev.status == CANCELED:
            state.request_cancel(ev.job)

    return on_event


def _revocation_listener(state: ServerState) -> Callable[[str], None]:
    def on_revoked(runner_id: str) -> None:
        # A key rotated or a runner deleted anywhere (REST here, or another server process on
        # the same PostgreSQL database): its channels here re-check their key and close.
        for ch in list(state.channels):
            if ch.runner.id == runner_id:
                ch.notify_revoked()

    return on_revoked


async def _start_background(app: web.Application) -> None:
    state: ServerState = app[STATE_KEY]
    state.hub.add_listener(_cancel_listener(state))
    if state.history is not None:  # completed jobs feed the history; confirmations finish
        state.hub.add_listener(state.history.on_event)
        state.history.start()  # catch up on what a stopped server left undone
    state.db.add_revocation_listener(_revocation_listener(state))
    state.hub.start()
    app[_TASKS_KEY] = [asyncio.create_task(sweeper(state), name="sweeper")]
    log.info(
        "heartbeat timeout %g s, job timeout grace %g s, max message %d bytes, "
        "allowed registries: %s",
        state.config.heartbeat_timeout,
        state.config.job_timeout_grace,
        state.config.max_message_bytes,
        state.config.registries.describe(),
    )


async def _shutdown(app: web.Application) -> None:
    """Close every channel with 1001: in-flight jobs stay as they are, their runners reconnect
    (to this server after a restart, or another one sharing the database) and report."""
    state: ServerState = app[STATE_KEY]
    state.shutting_down = True
    for t in app.get(_TASKS_KEY, []):
        t.cancel()
    for task in list(state.timers.values()):
        task.cancel()
    chans = list(state.channels)
    if chans:
        log.info("closing %d runner channel(s): server shutting down", len(chans))
    await asyncio.gather(
        *(ch.close(WSCloseCode.GOING_AWAY, SHUTDOWN_REASON) for ch in chans), return_exceptions=True
    )
    await state.hub.stop()  # ends the SSE streams


async def _stop_background(app: web.Application) -> None:
    state: ServerState = app[STATE_KEY]
    state.shutting_down = True
    tasks = list(app.get(_TASKS_KEY, [])) + list(state.timers.values())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if state.history is not None:
        await state.history.stop()
    await state.hub.stop()


async def start_site(
    app: web.Application, host: str, port: int, shutdown_timeout: float = 10.0
) -> tuple[web.AppRunner, int]:
    """Starts app on host:port (0 = any free port); returns the runner (call .cleanup() to stop)
    and the bound port."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=shutdown_timeout)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    # aiohttp keeps the asyncio.Server here; its socket has the real port.
    server: Optional[asyncio.base_events.Server] = site._server  # type: ignore[assignment]
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
    return runner, bound


async def first_start(db: Database, admin_token_file: Optional[str]) -> Optional[str]:
    """A database without any API token gets an admin token, written to admin_token_file (mode
    0600) or printed once to stderr. Returns the token if one was created."""
    if await db.count_tokens() > 0:
        return None
    if admin_token_file:
        _check_writable(admin_token_file)
    secret = await db.create_token("admin", admin=True)
    if admin_token_file:
        fd = os.open(admin_token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (secret + "\n").encode())
        finally:
            os.close(fd)
        log.info("first start: admin token written to %s", admin_token_file)
    else:
        print(f"benchrun serve: first start: admin token (shown once): {secret}", file=sys.stderr)
    return secret


def _check_writable(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ConfigError(f"--admin-token-file '{path}': directory '{parent}' is not writable")


async def serve(config: ServerConfig, *, stop: Optional[asyncio.Event] = None) -> None:
    """Opens and migrates the database, serves until SIGTERM/SIGINT (or `stop` is set), then shuts
    down cleanly."""
    from benchrun.server.db import open_database

    if config.admin_token_file:
        _check_writable(config.admin_token_file)
    db = open_database(config.db_url)
    try:
        try:
            version = await db.migrate()
        except BenchrunError:
            raise
        except Exception as e:  # e.g. PostgreSQL unreachable: one line for the CLI, not a trace
            raise BenchrunError(f"open database '{_redact(config.db_url)}': {e}") from e
        log.info("database %s at schema version %s", _redact(config.db_url), version)
        await first_start(db, config.admin_token_file)
        app = make_app(db, config)
        runner, port = await start_site(app, config.host, config.port, config.shutdown_timeout)
        log.info("listening on http://%s:%d", _host_for_url(config.host), port)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await runner.cleanup()
    finally:
        await db.close()
    log.info("stopped")


def run_server(config: ServerConfig) -> int:
    """The CLI's entry point for `benchrun serve`: blocks until SIGTERM/SIGINT, returns 0."""
    setup_logging()
    asyncio.run(serve(config))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`benchrun serve` from parsed CLI flags: --db, --listen, --heartbeat-timeout, --grace,
    --admin-token-file, --max-message (and, when the parser has them, --allow-registry,
    --insecure-registry,
    --oci-token, --poll-timeout). ConfigError for a bad value, before anything starts."""
    config = ServerConfig.from_options(
        db=args.db,
        listen=args.listen,
        heartbeat_timeout=args.heartbeat_timeout,
        grace=args.grace,
        admin_token_file=args.admin_token_file,
        max_message=args.max_message,
        insecure_registries=getattr(args, "insecure_registry", None) or (),
        oci_token=getattr(args, "oci_token", None) or "",
        allow_registries=getattr(args, "allow_registry", None) or (),
        **({"poll_timeout": args.poll_timeout} if getattr(args, "poll_timeout", None) else {}),
    )
    return run_server(config)


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
