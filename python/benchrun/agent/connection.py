"""The agent's WebSocket channel: connect with the runner key, send and receive protocol messages,
and the jittered exponential backoff between connection attempts.

One reader task per connection turns frames into parsed server messages (jobs.protocol) on a
queue, so the agent can wait for a message, a finished job and a signal at the same time. A frame
that is not a valid server message is logged and skipped, as upstream's server does for runners.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable, Optional

import aiohttp

from benchrun.errors import BenchrunError, ProtocolError
from benchrun.jobs import protocol

log = logging.getLogger("benchrun.agent")

CONNECT_TIMEOUT = 30.0  # seconds for TCP + TLS + the upgrade


class ConnectionLost(BenchrunError):
    """The channel closed or failed; the agent reconnects."""


class KeyRejected(BenchrunError):
    """The server refused the runner key (HTTP 401/403 on the upgrade): retrying cannot help."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


class Backoff:
    """Delays between reconnects: initial, doubling up to maximum, each scaled by a uniform
    1 +- jitter factor so a fleet does not reconnect in lockstep after a server restart."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng
        self._attempt = 0

    def next(self) -> float:
        base = min(self.maximum, self.initial * (2 ** min(self._attempt, 32)))
        self._attempt += 1
        return base * (1 - self.jitter + 2 * self.jitter * self._rng())

    def reset(self) -> None:
        self._attempt = 0


class Connection:
    """One open channel. Create it with Connection.open(); close() is idempotent."""

    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, max_message: int
    ) -> None:
        self._session = session
        self._ws = ws
        self._max_message = max_message
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.closed = False

    @classmethod
    async def open(cls, url: str, key: str, max_message: int) -> "Connection":
        """Connects and upgrades; KeyRejected on 401/403, ConnectionLost on anything else."""
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT)
        )
        try:
            ws = await session.ws_connect(
                url,
                headers={"Authorization": f"Bearer {key}"},
                max_msg_size=max_message,
                autoping=True,
                timeout=CONNECT_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as e:
            await session.close()
            if e.status in (401, 403):
                raise KeyRejected(
                    f"connect '{url}': the server refused the runner key " f"(HTTP {e.status})",
                    e.status,
                ) from None
            raise ConnectionLost(f"connect '{url}': HTTP {e.status} {e.message}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            await session.close()
            raise ConnectionLost(f"connect '{url}': {e or type(e).__name__}") from None
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, max_message)

    async def _read(self) -> None:
        reason = "closed by the server"
        try:
            async for frame in self._ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    try:
                        msg = protocol.parse_server_message(frame.data, self._max_message)
                    except ProtocolError as e:
                        log.warning("ignoring an invalid server message: %s", e)
                        continue
                    self._queue.put_nowait(msg)
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    log.warning("ignoring a binary frame of %d bytes", len(frame.data))
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    reason = f"channel error: {self._ws.exception() or 'unknown'}"
                    break
            if self._ws.close_code is not None:
                extra = self._ws.close_code
                reason = f"closed by the server (code {extra})"
        except Exception as e:  # a transport failure ends this connection, never the agent
            reason = f"channel error: {e or type(e).__name__}"
        finally:
            self._queue.put_nowait(ConnectionLost(reason))

    async def send(self, msg: dict[str, Any]) -> None:
        """Sends one message; ConnectionLost if the channel is gone."""
        if self.closed:
            raise ConnectionLost("send on a closed channel")
        text = protocol.dumps(msg)
        async with self._send_lock:
            try:
                await self._ws.send_str(text)
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as e:
                await self.close()
                raise ConnectionLost(f"send {msg.get('event')}: {e or type(e).__name__}") from None

    async def recv(self, timeout: Optional[float] = None) -> Optional[dict[str, Any]]:
        """The next server message; None after ``timeout`` seconds; ConnectionLost once closed."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, ConnectionLost):
            self._queue.put_nowait(item)  # every later recv sees it too
            raise item
        return item

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await asyncio.wait_for(self._ws.close(), 5)
        except (asyncio.TimeoutError, ConnectionError, aiohttp.ClientError, RuntimeError):
            pass
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass
        self._queue.put_nowait(ConnectionLost("closed by the agent"))
        await self._session.close()
