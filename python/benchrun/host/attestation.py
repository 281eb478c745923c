"""The host's measurement state in one small JSON-ready dict, recorded with every sandbox and vm
Result as ``facts["host_state"]`` (and shown by `benchrun report`):

    {"tuned": false,                  # no settable setting differs from its recommendation
     "differs": ["aslr", "thp_enabled"],   # the names of those that do
     "cpus": [1],                     # the benchmark CPUs of the tune journal, or null
     "journal": true,                 # a tune journal is in place (the host was tuned)
     "noise": {"score": 0.012, "measured_at": 1.7e9, ..., "age_s": 3600.0} or null}

"noise" is noise.json of the state directory (`benchrun host noise`), its scalar entries only,
with its age when attested. host_state() caches the settings part for a few seconds per process:
reading every per-CPU and per-IRQ file costs about a millisecond on a small host, too much to
pay on every run of a batch.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

from benchrun.errors import ConfigError

from . import journal as _journal
from .settings import as_root, catalogue

CACHE_SECONDS = 10.0


def _noise(state: Path) -> Optional[dict[str, Any]]:
    try:
        doc = json.loads((state / _journal.NOISE_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    out = {k: v for k, v in doc.items() if isinstance(v, (str, int, float, bool)) or v is None}
    measured = doc.get("measured_at")
    if isinstance(measured, (int, float)):
        out["age_s"] = round(max(0.0, time.time() - float(measured)), 1)
    return out


def _settings_state(root: Any, journal_path: Path) -> dict[str, Any]:
    try:
        doc = _journal.load(journal_path)
    except ConfigError as e:
        doc, error = None, str(e)
    else:
        error = ""
    cpus = doc.get("cpus") if doc else None
    try:
        _, settings = catalogue(
            root,
            cpus,
            keep_smt=bool(doc and doc.get("keep_smt")),
            journal=doc,
            informational=False,
        )
    except ConfigError as e:  # e.g. one CPU online: nothing to tune for
        return {
            "tuned": None,
            "differs": [],
            "cpus": cpus,
            "journal": doc is not None,
            "error": str(e),
        }
    differs = list(dict.fromkeys(s.name for s in settings if s.differs))
    out: dict[str, Any] = {
        "tuned": not differs,
        "differs": differs,
        "cpus": cpus,
        "journal": doc is not None or bool(error),
    }
    if error:
        out["error"] = error
    return out


def attest(
    root: "str | os.PathLike[str]" = "/",
    *,
    journal: "str | os.PathLike[str] | None" = None,
    state: "str | os.PathLike[str] | None" = None,
) -> dict[str, Any]:
    """The host's measurement state now (see the module docstring). Never raises for what the
    host lacks: unreadable settings are simply not compared."""
    state_dir = Path(state) if state is not None else _journal.state_dir()
    jpath = Path(journal) if journal is not None else state_dir / _journal.JOURNAL_NAME
    out = _settings_state(as_root(root), jpath)
    out["noise"] = _noise(state_dir)
    return out


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def host_state(root: "str | os.PathLike[str]" = "/") -> dict[str, Any]:
    """attest() with the settings part cached for CACHE_SECONDS per process (the noise figure and
    its age are read every time: one small file)."""
    state_dir = _journal.state_dir()
    key = (os.path.abspath(os.fspath(root)), str(state_dir))
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is None or now - hit[0] > CACHE_SECONDS:
        settings = _settings_state(as_root(root), state_dir / _journal.JOURNAL_NAME)
        with _cache_lock:
            _cache[key] = (now, settings)
    else:
        settings = hit[1]
    cpus = settings["cpus"]
    return {
        **settings,
        "differs": list(settings["differs"]),
        "cpus": list(cpus) if cpus is not None else None,
        "noise": _noise(state_dir),
    }


def forget() -> None:
    """Drops host_state()'s cache (tune and reset call it: the state just changed)."""
    with _cache_lock:
        _cache.clear()


__all__ = ["CACHE_SECONDS", "attest", "forget", "host_state"]
