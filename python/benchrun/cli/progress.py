"""Pull progress: rich bars on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from benchrun.image import ProgressFn


@contextmanager
def pull_progress(enabled: bool) -> Iterator[Optional[ProgressFn]]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )
    except ImportError:  # rich is optional
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    tasks: dict[str, int] = {}

    def on_event(kind: str, digest: str, done: int, total: int) -> None:
        short = digest.split(":", 1)[-1][:12]
        if kind in ("layer_start", "layer_progress", "layer_done"):
            if digest not in tasks:
                tasks[digest] = progress.add_task(f"layer {short}", total=total or None)
            progress.update(tasks[digest], completed=done, total=total or None)
        elif kind == "unpack_start":
            progress.console.print(f"unpacking layer {done + 1}/{total} {short}", style="dim")

    with progress:
        yield on_event
