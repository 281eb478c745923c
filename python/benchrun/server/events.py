"""One subscription to the database's event stream (db.events(): in-process for SQLite, NOTIFY for
PostgreSQL), fanned out to every listener in this process: SSE clients and runner channels (a
job canceled anywhere reaches the channel executing it here)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from benchrun.server.db.base import Database, Event

log = logging.getLogger("benchrun.server.events")


class Subscription:
    """A bounded queue of events for one consumer. A consumer that falls behind by `maxsize`
    events is dropped (it gets None), instead of growing the server's memory."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Optional[Event]] = asyncio.Queue(maxsize + 1)
        self.maxsize = maxsize
        self.dropped = False

    def _offer(self, ev: Optional[Event]) -> bool:
        if self.dropped:
            return False
        if ev is not None and self.queue.qsize() >= self.maxsize:
            self.dropped = True
            ev = None  # the slot kept free by maxsize + 1 carries the end marker
        self.queue.put_nowait(ev)
        return ev is not None

    async def get(self) -> Optional[Event]:
        return await self.queue.get()


class EventHub:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._task: Optional[asyncio.Task[None]] = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for sub in list(self._subs):
            sub._offer(None)
        self._subs.clear()

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """fn(event) runs synchronously in the hub's task; it must not block."""
        self._listeners.append(fn)

    def publish(self, ev: Event) -> None:
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the others
                log.exception("event listener failed on %s", ev)
        for sub in list(self._subs):
            if not sub._offer(ev) and sub.dropped:
                self._subs.discard(sub)
                log.warning("dropped an event subscriber that fell %d events behind", sub.maxsize)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            stream = self._db.events()
            try:
                async for ev in stream:
                    delay = 0.5
                    self.publish(ev)
                log.warning("database event stream ended; resubscribing")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - e.g. the PostgreSQL connection dropped
                log.warning("database event stream failed: %s; resubscribing in %.1f s", e, delay)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await asyncio.shield(aclose())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
