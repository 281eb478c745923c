"""Bearer authentication: user API tokens for the REST API and events, runner keys for the runner
channel. Only hashes are stored (the database compares SHA-256); any failure is 401 with a JSON
error and never says which part was wrong."""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from benchrun.server.db.base import Database, Principal, Runner
from benchrun.server.http import http_error

USER_TOKEN_PREFIX = "benchrun_user_"
RUNNER_KEY_PREFIX = "bencher_runner_"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="benchrun"'}


def bearer(request: web.Request) -> Optional[str]:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(message: str) -> web.HTTPException:
    return http_error(401, message, **_CHALLENGE)


async def user(request: web.Request, db: Database) -> Principal:
    token = bearer(request)
    if token is None:
        raise unauthorized("missing 'Authorization: Bearer <API token>' header")
    principal = await db.auth_token(token) if token.startswith(USER_TOKEN_PREFIX) else None
    if principal is None:
        raise unauthorized("invalid API token")
    return principal


async def admin(request: web.Request, db: Database) -> Principal:
    principal = await user(request, db)
    if not principal.admin:
        raise http_error(403, "this endpoint needs an admin token")
    return principal


async def runner(request: web.Request, db: Database, name: str) -> Runner:
    """The runner of the channel path, authenticated by its key (hash AND runner in one query)."""
    key = bearer(request)
    if key is None:
        raise unauthorized("missing 'Authorization: Bearer <runner key>' header")
    found = await db.auth_runner(name, key) if key.startswith(RUNNER_KEY_PREFIX) else None
    if found is None:
        raise unauthorized(f"invalid runner key for runner '{name[:64]}'")
    return found
