"""The engine every ASGI event stream shares: an outbox of pending bytes, and a pump.

What is to be sent waits in an `Outbox`, and each wake-up of the `Pump` sends everything pending
as ONE `http.response.body` message. The hub writes an event's bytes (encoded once for all
subscribers) straight into each stream's outbox — a list append — so fan-out costs no task,
queue or encoding per subscriber.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from ssehub.api import HEARTBEAT
from ssehub.asgi._scope import Receive, Send

__all__ = [
    "ABANDON",
    "DISCONNECT",
    "END_OF_SOURCE",
    "EXPIRED",
    "FAILED",
    "OVERFLOW",
    "SHUTDOWN",
    "STALLED",
    "Outbox",
    "Pump",
    "watch_for_disconnect",
]

# An iterable's producer runs ahead of the client by at most this much before it waits.
_PRODUCER_AHEAD: Final = 64 * 1024

# Why a stream ended.
END_OF_SOURCE: Final = "end of source"
DISCONNECT: Final = "client disconnected"
SHUTDOWN: Final = "server shutdown"
EXPIRED: Final = "token expired"  # a clean end: what is pending goes first
OVERFLOW: Final = "client too slow: too many bytes pending"
STALLED: Final = "client too slow: send timed out"
FAILED: Final = "source failed"
# After these the client is gone or cannot take more: pending bytes are dropped.
ABANDON: Final = frozenset({DISCONNECT, OVERFLOW, STALLED})
# ...and after these no final empty body: a failed source must not look like a complete stream.
_UNFINISHED: Final = ABANDON | {FAILED}


class Outbox:
    """The bytes waiting for one stream's next send, and why the stream must end, once it must.

    `write` is what the hub calls for every event: it never blocks and never raises.
    """

    __slots__ = ("chunks", "end", "limit", "on_end", "room", "size", "waiter")

    def __init__(self, limit: int | None) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.end: str | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.room: asyncio.Future[None] | None = None
        self.on_end: Callable[[str], None] | None = None

    def write(self, data: bytes) -> None:
        if self.end is not None:
            return
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.finish(OVERFLOW)
            return
        self.chunks.append(data)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def finish(self, reason: str) -> None:
        if self.end is None:
            self.end = reason
            for future in (self.waiter, self.room):
                if future is not None and not future.done():
                    future.set_result(None)
            if self.on_end is not None:
                self.on_end(reason)

    def take(self) -> bytes:
        chunks = self.chunks
        self.chunks = []
        self.size = 0
        room = self.room
        if room is not None and not room.done():
            room.set_result(None)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def wait_for_room(self) -> None:
        """Hold a producer back while the client is behind (the hub's writers never wait)."""
        while self.size >= _PRODUCER_AHEAD and self.end is None:
            self.room = asyncio.get_running_loop().create_future()
            await self.room


class Pump:
    """Sends an outbox's bytes until the stream ends; beats when idle; cuts a stuck send short.

    A send waits only while the client is not taking bytes (the server's flow control). Such a
    send is abandoned — the task cancelled, the send being the only place it can be waiting —
    once it has waited `send_timeout`, or at once when the stream must end anyway (the client
    is too far behind, gone, or the server is stopping). A timer every quarter of
    min(heartbeat, send_timeout) does the time checks, so the hot path has no per-send timer.
    """

    __slots__ = (
        "_cut_short",
        "_heartbeat",
        "_interval",
        "_last_sent",
        "_loop",
        "_send",
        "_send_timeout",
        "_sending_since",
        "_task",
        "_timer",
        "outbox",
    )

    def __init__(
        self, outbox: Outbox, send: Send, heartbeat: float | None, send_timeout: float | None
    ) -> None:
        self.outbox = outbox
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._heartbeat = heartbeat or None
        self._send_timeout = send_timeout or None
        periods = [p for p in (self._heartbeat, self._send_timeout) if p is not None]
        self._interval = min(periods) / 4 if periods else None
        self._sending_since: float | None = None
        self._last_sent = self._loop.time()
        self._cut_short = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        if self._interval is not None:
            self._timer = self._loop.call_later(self._interval, self._tick)
        self.outbox.on_end = self._ending
        try:
            await self._run()
        finally:
            self.outbox.on_end = None
            if self._timer is not None:
                self._timer.cancel()

    async def _run(self) -> None:
        outbox = self.outbox
        while True:
            if outbox.chunks and outbox.end not in ABANDON:
                if not await self._body(outbox.take(), True):
                    return
                continue
            if outbox.end is not None:
                break
            waiter = outbox.waiter = self._loop.create_future()
            await waiter
        if outbox.end not in _UNFINISHED:
            await self._body(b"", False)

    async def _body(self, body: bytes, more: bool) -> bool:
        """Send; False if the send was cut short (then nothing more can be sent)."""
        self._sending_since = self._loop.time()
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
        except asyncio.CancelledError:
            # Our cancellation, and only ours, ends the stream quietly; anyone else's propagates.
            if self._cut_short and self._task is not None and self._task.uncancel() == 0:
                return False
            raise
        self._last_sent = self._sending_since
        self._sending_since = None
        return True

    def _cut_send_short(self) -> None:
        if self._sending_since is not None and not self._cut_short and self._task is not None:
            self._cut_short = True
            self._task.cancel()

    def _ending(self, reason: str) -> None:
        if reason in ABANDON or reason == SHUTDOWN:
            self._cut_send_short()

    def _tick(self) -> None:
        now = self._loop.time()
        since = self._sending_since
        if since is not None:
            if self._send_timeout is not None and now - since >= self._send_timeout:
                self.outbox.finish(STALLED)
                self._cut_send_short()
                return
        elif (
            self._heartbeat is not None
            and now - self._last_sent >= self._heartbeat
            and not self.outbox.chunks
        ):
            self.outbox.write(HEARTBEAT)
        assert self._interval is not None
        self._timer = self._loop.call_later(self._interval, self._tick)


async def watch_for_disconnect(receive: Receive, outbox: Outbox) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass  # the rest of a request body nobody read
    except Exception:
        pass  # a server that fails receive() once the connection is gone: gone all the same
    outbox.finish(DISCONNECT)
