"""The ASGI event-stream responses: an app's own iterable, or hub topics with replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from ssehub._items import encode_item
from ssehub.api import SSE_HEADERS, opening
from ssehub.asgi._engine import (
    END_OF_SOURCE,
    EXPIRED,
    FAILED,
    OVERFLOW,
    STALLED,
    Outbox,
    Pump,
    watch_for_disconnect,
)
from ssehub.asgi._scope import Receive, Scope, Send
from ssehub.asgi._scope import last_event_id as resume_point
from ssehub.asgi._shutdown import register, unregister
from ssehub.hub import Hub, SlowSubscriberError
from ssehub.model import Audience, topic_tuple

if TYPE_CHECKING:
    from starlette.background import BackgroundTask
    from starlette.responses import Response as _ResponseBase
else:
    try:
        # FastAPI passes an endpoint's return value through untouched only if it is a Starlette
        # Response; without Starlette the responses are plain ASGI apps.
        from starlette.responses import Response as _ResponseBase
    except ImportError:  # pragma: no cover - Starlette is optional

        class _ResponseBase:
            pass


__all__ = ["EventSourceResponse", "HubStreamResponse", "hub_stream"]

_SSE_HEADERS: Final = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SSE_HEADERS
)


def _header_list(extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name in extra or ()}
    headers = [(name, value) for name, value in _SSE_HEADERS if name.decode() not in names]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


class _StreamResponse(_ResponseBase):
    """An event-stream response: the parts both kinds share. Subclasses feed the outbox."""

    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        status_code: int,
        heartbeat: float | None,
        send_timeout: float | None,
        headers: Mapping[str, str] | None,
        background: BackgroundTask | None,
    ) -> None:
        # Starlette's Response.__init__ renders a body; a stream has none, so set its fields.
        self.status_code = status_code
        self.background = background
        self.raw_headers = _header_list(headers)
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self.ended: str | None = None  # why the stream ended, once it has (for logs and tests)

    def _new_outbox(self) -> Outbox:
        return Outbox(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        outbox = self._new_outbox()
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        watcher = loop.create_task(watch_for_disconnect(receive, outbox))
        register(loop, outbox)
        try:
            await self._start(outbox)
            await Pump(outbox, send, self.heartbeat, self.send_timeout).run()
        finally:
            watcher.cancel()
            unregister(loop, outbox)
            self.ended = outbox.end
            await self._stop(outbox)
        if self.background is not None:
            await self.background()

    async def _start(self, outbox: Outbox) -> None:
        raise NotImplementedError

    async def _stop(self, outbox: Outbox) -> None:
        raise NotImplementedError


class EventSourceResponse(_StreamResponse):
    """Stream `content` as Server-Sent Events from any ASGI app's route.

    `content` is an async or sync iterable of `Event`s, strings (data), bytes (already encoded)
    or JSON values (dicts, lists, pydantic models — see `encode_item`). A sync iterable is
    iterated in the loop's default executor, one item at a time, so it may block; an async one
    is better for long streams (each blocked sync stream holds an executor thread).

    Heartbeat comments go out after `heartbeat` seconds without a send. `retry` (ms), if given,
    is sent first: the client's reconnection delay. When the stream ends early (disconnect,
    stuck send, shutdown) the iterator is closed, so its `finally` runs. An exception from the
    iterator ends the stream and propagates to the server, which logs it and drops the
    connection.
    """

    def __init__(
        self,
        content: AsyncIterable[object] | Iterable[object],
        *,
        status_code: int = 200,
        heartbeat: float | None = 15.0,
        retry: int | None = None,
        send_timeout: float | None = 10.0,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            status_code=status_code,
            heartbeat=heartbeat,
            send_timeout=send_timeout,
            headers=headers,
            background=background,
        )
        if retry is not None and (type(retry) is not int or retry < 0):
            raise ValueError("retry must be a whole, non-negative number of milliseconds")
        self.content = content
        self.retry = retry
        self._producer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def _start(self, outbox: Outbox) -> None:
        if self.retry is not None:
            outbox.write(b"retry: %d\n\n" % self.retry)
        self._producer = asyncio.get_running_loop().create_task(self._produce(outbox))

    async def _produce(self, outbox: Outbox) -> None:
        content = self.content
        items = aiter(content) if isinstance(content, AsyncIterable) else _in_executor(content)
        try:
            async for item in items:
                outbox.write(encode_item(item))
                await outbox.wait_for_room()
                if outbox.end is not None:
                    break
        except Exception as error:
            self._error = error
            outbox.finish(FAILED)
        else:
            outbox.finish(END_OF_SOURCE)
        finally:
            await _close(items)

    async def _stop(self, outbox: Outbox) -> None:
        producer = self._producer
        if producer is not None:
            producer.cancel()
            # The producer closes the iterator on its way out: wait so its `finally` has run.
            await asyncio.wait([producer])
        if self._error is not None:
            raise self._error


async def _close(items: object) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def _in_executor(iterable: Iterable[object]) -> AsyncIterator[object]:
    """Iterate a sync iterable without blocking the loop; close it (in a thread) at the end.

    A cancelled `next()` keeps running in its thread — it cannot be interrupted — so closing
    waits for it: a generator cannot be closed while it runs.
    """
    loop = asyncio.get_running_loop()
    iterator = iter(iterable)
    done = object()
    pending: asyncio.Future[object] | None = None
    try:
        while True:
            pending = loop.run_in_executor(None, next, iterator, done)
            item = await asyncio.shield(pending)
            if item is done:
                return
            yield item
    finally:
        close: Callable[[], object] | None = getattr(iterator, "close", None)
        if close is not None:
            if pending is None or pending.done():
                loop.run_in_executor(None, close)
            else:
                pending.add_done_callback(lambda _: loop.run_in_executor(None, close))


class HubStreamResponse(_StreamResponse):
    """A stream of hub topics, with replay or reset from `last_event_id` (see `hub_stream`).

    Private events reach it when `audience` may receive them; it ends at `expires` (seconds
    since the epoch: its token's expiry), when given.
    """

    def __init__(
        self,
        hub: Hub,
        topics: Sequence[str],
        last_event_id: str | None,
        *,
        audience: Audience | None = None,
        expires: float | None = None,
        heartbeat: float | None = 15.0,
        retry: int = 3000,
        send_timeout: float | None = 10.0,
        max_pending_bytes: int = 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            status_code=200,
            heartbeat=heartbeat,
            send_timeout=send_timeout,
            headers=headers,
            background=background,
        )
        self.hub = hub
        self.topics = tuple(topics)
        self.last_event_id = last_event_id
        self.retry = retry
        self.max_pending_bytes = max_pending_bytes
        self.audience = audience
        self.expires = expires
        self._expiry: asyncio.TimerHandle | None = None
        self._resuming: asyncio.Task[None] | None = None

    def _new_outbox(self) -> Outbox:
        return Outbox(self.max_pending_bytes)

    async def _start(self, outbox: Outbox) -> None:
        hub = self.hub
        await hub.start()
        outbox.write(opening(self.retry))
        if self.expires is not None:
            delay = max(0.0, self.expires - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, outbox.finish, EXPIRED)
        if self.last_event_id is None:
            hub.open_stream(outbox, self.topics, outbox.write, self.audience)
        else:
            # In a task of its own, so the pump sends the replay as the client takes it.
            self._resuming = asyncio.get_running_loop().create_task(
                self._resume(outbox, self.last_event_id)
            )

    async def _resume(self, outbox: Outbox, last_event_id: str) -> None:
        # While it catches up the stream is paced by its client (`wait_for_room`), so the
        # limit on what may wait for a slow client applies only once it is live.
        limit, outbox.limit = outbox.limit, None
        try:
            await self.hub.resume_stream(
                outbox,
                self.topics,
                outbox.write,
                last_event_id,
                self.audience,
                outbox.wait_for_room,
            )
            await outbox.wait_for_room()
            outbox.limit = limit
        except SlowSubscriberError:
            outbox.finish(OVERFLOW)
        except Exception:  # the store is away: the client retries and resumes
            outbox.finish(FAILED)

    async def _stop(self, outbox: Outbox) -> None:
        if self._resuming is not None:
            self._resuming.cancel()
        if self._expiry is not None:
            self._expiry.cancel()
        if outbox.end in (OVERFLOW, STALLED):
            self.hub.stats.slow_dropped += 1
        self.hub.remove(outbox, self.topics)


def hub_stream(
    hub: Hub,
    request: object,
    topics: str | Iterable[str],
    *,
    last_event_id: str | None = None,
    audience: Audience | None = None,
    heartbeat: float | None = 15.0,
    retry: int = 3000,
    send_timeout: float | None = 10.0,
    max_pending_bytes: int = 1024 * 1024,
    headers: Mapping[str, str] | None = None,
) -> HubStreamResponse:
    """A response streaming `topics` of `hub`, for an app's own route.

    The app authenticates and chooses the topics; the client resumes with its Last-Event-ID
    (header or `?last_event_id=`), read from `request` (a Starlette/FastAPI Request or an ASGI
    scope) unless `last_event_id` is given: missed events are replayed, or an `event: reset`
    says the gap cannot be filled. Private events on those topics arrive only when `audience`
    (`ssehub.auth.Grants`, say `Grants(subscribe=["user.42"])`) may receive them; the stream
    ends at the audience's `exp`, if it has one. Raises ValueError for an invalid topic.
    """
    resume_from = last_event_id if last_event_id is not None else resume_point(request)
    return HubStreamResponse(
        hub,
        topic_tuple(topics),
        resume_from,
        audience=audience,
        expires=getattr(audience, "exp", None),
        heartbeat=heartbeat,
        retry=retry,
        send_timeout=send_timeout,
        max_pending_bytes=max_pending_bytes,
        headers=headers,
    )
