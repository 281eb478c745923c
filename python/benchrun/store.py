"""Where the local image store lives: $BENCHRUN_CACHE, else $XDG_CACHE_HOME/benchrun, else ~/.cache/benchrun."""

from __future__ import annotations

import os
from pathlib import Path


def default_store() -> Path:
    env = os.environ.get("BENCHRUN_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "benchrun"


def resolve_store(store: str | os.PathLike[str] | None) -> str:
    path = Path(store) if store is not None else default_store()
    return str(path.expanduser().absolute())


def default_docker_config() -> str:
    """$DOCKER_CONFIG/config.json or ~/.docker/config.json (the core reads no environment)."""
    base = os.environ.get("DOCKER_CONFIG")
    return str(Path(base) / "config.json") if base else str(Path.home() / ".docker" / "config.json")
