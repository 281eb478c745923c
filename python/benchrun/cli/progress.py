"""Pull progress: rich bars on a terminal, nothing otherwise.

rich is imported on the first layer event, not before: a run whose image is already in the store
(the common case) never pays for it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from benchrun.image import ProgressFn


def _bars() -> Any:
    """A started rich Progress for layer downloads, or None when rich is missing (it is optional)."""
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        return None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    progress.start()
    return progress


_SHOWN = ("layer_start", "layer_progress", "layer_done", "unpack_start")


@contextmanager
def pull_progress(enabled: bool) -> Iterator[Optional[ProgressFn]]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    import threading  # here: a run that is not on a terminal does not need it

    lock = threading.Lock()  # events may come from the pull's worker threads
    state: dict[str, Any] = {"progress": None, "started": False}
    tasks: dict[str, int] = {}

    def on_event(kind: str, digest: str, done: int, total: int) -> None:
        if kind not in _SHOWN:
            return
        with lock:
            if not state["started"]:
                state["started"] = True
                state["progress"] = _bars()
            progress = state["progress"]
            if progress is None:
                return
            short = digest.split(":", 1)[-1][:12]
            if kind == "unpack_start":
                progress.console.print(f"unpacking layer {done + 1}/{total} {short}", style="dim")
                return
            if digest not in tasks:
                tasks[digest] = progress.add_task(f"layer {short}", total=total or None)
            progress.update(tasks[digest], completed=done, total=total or None)

    try:
        yield on_event
    finally:
        if state["progress"] is not None:
            state["progress"].stop()
