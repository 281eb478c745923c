"""The job server's storage: open_database(url) picks the backend from the URL.

    db = open_database("sqlite:///var/lib/benchrun/jobs.db")   # or "postgresql://user@host/db"
    await db.migrate()        # connects, applies pending migrations; call once before anything else
    ...
    await db.close()

open_database() itself does no I/O (it may run before the event loop starts); the first await on
the returned Database (normally migrate()) connects. A Database belongs to the event loop that
first used it.
"""

from __future__ import annotations

import urllib.parse

from benchrun.errors import ConfigError
from benchrun.server.db.base import Database, Event, Job, Principal, Project, Runner

__all__ = ["Database", "Event", "Job", "Principal", "Project", "Runner", "open_database"]

_USAGE = (
    "use sqlite:///absolute/path.db, sqlite://:memory:, or "
    "postgresql://user[:password]@host[:port]/database"
)


def open_database(url: str, *, pool_size: int = 10) -> Database:
    """sqlite:///abs/path.db (the file is created on first use), sqlite://:memory: (tests; one
    connection, gone on close), postgresql://... or postgres://... (any DSN asyncpg accepts;
    pool_size = most pooled connections per process, plus one for LISTEN). ConfigError for
    anything else."""
    if not isinstance(url, str):
        raise ConfigError(f"database URL {url!r}: {_USAGE}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(f"database URL '{url}': no scheme ({_USAGE})")
    if scheme == "sqlite":
        from benchrun.server.db.sqlite import SqliteDatabase

        if rest in (":memory:", "/:memory:"):
            return SqliteDatabase(":memory:")
        path = urllib.parse.unquote(rest)
        if not path.startswith("/") or path.endswith("/") or "?" in path or "\0" in path:
            raise ConfigError(f"database URL '{url}': {_USAGE}")
        return SqliteDatabase(path)
    if scheme in ("postgresql", "postgres"):
        if pool_size < 1:
            raise ConfigError(f"database pool size {pool_size}: must be at least 1")
        from benchrun.server.db.postgres import PostgresDatabase, redact

        try:
            urllib.parse.urlsplit(url).port  # asyncpg reports a bad port only on connect
        except ValueError as e:
            raise ConfigError(f"database URL '{redact(url)}': {e}") from None
        return PostgresDatabase(url, pool_size=pool_size)
    raise ConfigError(f"database URL '{url}': unsupported scheme '{scheme}' ({_USAGE})")
