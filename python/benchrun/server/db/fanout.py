"""In-process wakeups and event fan-out on the event loop, fed by the SQLite backend directly and by
the PostgreSQL backend's LISTEN connection.

Each events() subscriber gets its own bounded buffer (a deque with maxlen, default 1000 events). A
subscriber that falls behind loses its OLDEST events rather than making the server grow without
bound or stalling the publisher; Subscription.dropped counts what it lost so a consumer (SSE) can
tell its client to re-read the job list. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Optional

from benchrun.server.db.base import Event

DEFAULT_BUFFER = 1000


class WorkSignal:
    """wait_for_work(): every waiter wakes on the next wake()."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future] = set()

    def wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(True)
        self._waiters.clear()

    async def wait(self, timeout: float) -> bool:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, max(0.0, timeout))
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiters.discard(fut)


class Subscription:
    """An async iterator of Events; registered when created, so no event after events() returns is
    missed. Ends when the database closes or after aclose()."""

    def __init__(self, hub: "EventHub", maxsize: int) -> None:
        self._hub = hub
        self._buffer: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _push(self, event: Event) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._buffer.append(event)
        self._ready.set()

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        self._hub._subscribers.discard(self)
        self._buffer.clear()
        self._end()


class EventHub:
    def __init__(self, maxsize: int = DEFAULT_BUFFER) -> None:
        # Weak: a subscriber that is dropped without aclose() stops costing anything.
        self._subscribers: "weakref.WeakSet[Subscription]" = weakref.WeakSet()
        self._maxsize = maxsize
        self._closed = False

    def subscribe(self, maxsize: Optional[int] = None) -> Subscription:
        sub = Subscription(self, maxsize or self._maxsize)
        if self._closed:
            sub._end()
        else:
            self._subscribers.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        for sub in list(self._subscribers):
            sub._push(event)

    def close(self) -> None:
        self._closed = True
        for sub in list(self._subscribers):
            sub._end()
        self._subscribers.clear()
