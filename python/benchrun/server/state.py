"""What one server process shares between its connections: the database, the config, the event
hub, which channel executes which job here, and the disconnect timers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from benchrun.server.config import ServerConfig
from benchrun.server.db.base import Database
from benchrun.server.events import EventHub

STATE_KEY = "benchrun.state"  # app[STATE_KEY] is the process's ServerState

if TYPE_CHECKING:
    from benchrun.server.channel import RunnerChannel
    from benchrun.server.history.alerts import HistoryService


@dataclass
class ServerState:
    db: Database
    config: ServerConfig
    hub: EventHub
    channels: set["RunnerChannel"] = field(default_factory=set)  # every open channel
    executing: dict[str, "RunnerChannel"] = field(default_factory=dict)  # job id -> its channel
    # job id -> the timer armed when its runner disconnected mid-job
    timers: dict[str, "asyncio.Task[None]"] = field(default_factory=dict)
    shutting_down: bool = False
    history: Optional["HistoryService"] = None  # history, detection, confirmations

    def request_cancel(self, job_id: str) -> bool:
        """Tells the channel executing job_id here (if any) to send `cancel` now."""
        ch = self.executing.get(job_id)
        if ch is None:
            return False
        ch.notify_cancel(job_id)
        return True
