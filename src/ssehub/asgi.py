"""Server-Sent Events in any ASGI app (FastAPI, Starlette, bare ASGI), and the hub over ASGI.

- `EventSourceResponse(content)` streams an async or sync iterable of `Event`s, strings or JSON
  values from an app's own route.
- `hub_app(hub)` is the hub's `/events` and `/publish` as an ASGI app, to mount anywhere.
- `hub_stream(hub, request, topics)` streams hub topics from an app's own route, so the app
  authenticates and picks the topics.

Every response shares one engine (`_Pump`): what is to be sent waits in an `_Outbox`, and each
wake-up sends everything pending as ONE `http.response.body` message. The hub writes an event's
bytes (encoded once for all subscribers) straight into each stream's outbox — a list append — so
fan-out costs no task, queue or encoding per subscriber. A stream ends, running the source's
`finally`, when:

- its source ends (the final empty body is sent);
- the client goes away (`http.disconnect`, listened for concurrently);
- a send, heartbeat included, cannot complete within `send_timeout` (a frozen client);
- more than `max_pending_bytes` wait for a hub stream's client (a slow client; it resumes from
  its Last-Event-ID, and `hub.stats.slow_dropped` counts it);
- the server shuts down (see below).

Shutdown. On SIGTERM/SIGINT servers stop accepting and then wait for open responses: uvicorn
until every connection has closed (forever, unless --timeout-graceful-shutdown), granian until
the clients leave (unless --workers-kill-timeout), hypercorn for its graceful_timeout (3 s), and
none tells a streaming response to end (uvicorn sends `lifespan.shutdown` only after the
connections are gone, so the lifespan cannot help). What all of them do have is a Python signal
handler in the process that serves: uvicorn's `signal.signal` handler, or hypercorn's (`-w 0`)
and granian's workers' `loop.add_signal_handler`, whose Python-level handler asyncio and uvloop
set to a no-op (the loop learns of the signal through its wake-up fd). So when a stream opens on
the main thread, ssehub wraps whatever handler is installed in one that ends every stream and
then calls it: the server's code and behaviour are untouched, no server class is patched, and a
signal nobody handles in Python (SIG_DFL, SIG_IGN) is left alone. Streams end with a proper
final chunk; clients reconnect (to another instance) and resume from their Last-Event-ID.

Not covered: hypercorn's worker processes (its default `-w 1`) get no signal, only a flag their
parent sets, so there streams end at its graceful_timeout, by cancellation (the `finally` of the
source still runs, the hub subscription is still removed). Where no signal arrives at all (a
server stopped from code, or run off the main thread) call `end_streams()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from ssehub.hub import Hub, check_topic
from ssehub.server import routes
from ssehub.server.http import (
    SSE_HEADERS,
    HTTPError,
    Request,
    Response,
    error_response,
    json_response,
)
from ssehub.wire import Event, comment, encode

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


__all__ = [
    "EventSourceResponse",
    "HubApp",
    "HubStreamResponse",
    "encode_item",
    "end_streams",
    "hub_app",
    "hub_stream",
    "last_event_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Connection: close is the native server's framing choice; an ASGI server frames the body itself
# (and HTTP/2 forbids the header), so only the other SSE headers are sent.
_SSE_HEADERS: Final = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SSE_HEADERS
    if name != "Connection"
)
_HEARTBEAT: Final = comment("heartbeat")
# An iterable's producer runs ahead of the client by at most this much before it waits.
_PRODUCER_AHEAD: Final = 64 * 1024

# Why a stream ended.
_END_OF_SOURCE: Final = "end of source"
_DISCONNECT: Final = "client disconnected"
_SHUTDOWN: Final = "server shutdown"
_OVERFLOW: Final = "client too slow: too many bytes pending"
_STALLED: Final = "client too slow: send timed out"
_FAILED: Final = "source failed"
# After these the client is gone or cannot take more: pending bytes are dropped.
_ABANDON: Final = frozenset({_DISCONNECT, _OVERFLOW, _STALLED})
# ...and after these no final empty body: a failed source must not look like a complete stream.
_UNFINISHED: Final = _ABANDON | {_FAILED}


def encode_item(item: object) -> bytes:
    """The event-stream bytes for one item of a stream's content.

    `Event` → as is; `str` → its data; `bytes` → already encoded, sent untouched; an object with
    `model_dump_json()` (a pydantic model) → that JSON as data; anything else → JSON as data.
    """
    if isinstance(item, Event):
        return encode(item)
    if isinstance(item, str):
        return encode(Event(data=item))
    if isinstance(item, bytes):
        return item
    dump = getattr(item, "model_dump_json", None)
    if callable(dump):
        return encode(Event(data=str(dump())))
    return encode(Event(data=json.dumps(item, ensure_ascii=False, separators=(",", ":"))))


# -- request helpers ----------------------------------------------------------------------------


def _scope_of(request_or_scope: object) -> Scope:
    scope = getattr(request_or_scope, "scope", request_or_scope)
    if not isinstance(scope, MutableMapping):
        raise TypeError(f"expected an ASGI scope or a request with .scope, not {scope!r}")
    return scope


def _request(scope: Scope, body: bytes = b"") -> Request:
    """The native server's request model for an ASGI scope, so its route helpers apply."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = value if name not in headers else f"{headers[name]}, {value}"
    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    request = Request.parse_target(scope.get("method", "GET"), f"{path}?{query}", headers)
    request.body = body
    return request


def last_event_id(request_or_scope: object) -> str | None:
    """Where the client wants to resume: its `Last-Event-ID` header, else `?last_event_id=`.

    Takes an ASGI scope or anything with a `.scope` (a Starlette/FastAPI `Request`).
    """
    return _resume_point(request_or_scope)


def _resume_point(request_or_scope: object) -> str | None:
    return routes.last_event_id(_request(_scope_of(request_or_scope)))


def _route_path(scope: Scope) -> str:
    # Under a Starlette Mount `path` is the full path and `root_path` the mount point.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


# -- shutdown -----------------------------------------------------------------------------------

# Open streams by loop. Each loop's set is touched only on that loop's thread; other threads and
# signal handlers only list the loops and schedule work on them.
_open_streams: dict[asyncio.AbstractEventLoop, set[_Outbox]] = {}
_ending_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_ending_everything = False
_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)


def end_streams(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """End the open event streams, and any opened later: those on `loop`, or all of them.

    ssehub does this itself (for all loops) when the server gets SIGTERM or SIGINT; see the
    module docstring. Call it when you stop a server from code — e.g. with uvicorn run in a
    thread: `server.should_exit = True; end_streams(server_loop)` — since the server will not
    stop while a stream is open. Safe from any thread and from signal handlers.
    """
    global _ending_everything
    if loop is None:
        _ending_everything = True
    loops = list(_open_streams) if loop is None else [loop]
    for each in loops:
        with contextlib.suppress(RuntimeError):  # that loop is closed: its streams are gone
            each.call_soon_threadsafe(_end_loop_streams, each)


def _end_loop_streams(loop: asyncio.AbstractEventLoop) -> None:
    _ending_loops.add(loop)
    for outbox in list(_open_streams.get(loop, ())):
        outbox.finish(_SHUTDOWN)


class _EndStreamsThen:
    """A signal handler: end every stream, then do exactly what the server's handler does."""

    def __init__(self, server_handler: Callable[[int, FrameType | None], Any]) -> None:
        self.server_handler = server_handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        end_streams()
        self.server_handler(signum, frame)


def _observe_shutdown_signals() -> None:
    # A server installs its handlers before it serves, so by the time a stream opens they are in
    # place; checking at every stream also covers a server that reinstalls them.
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler) and not isinstance(handler, _EndStreamsThen):
            signal.signal(signum, _EndStreamsThen(handler))


def _register(loop: asyncio.AbstractEventLoop, outbox: _Outbox) -> None:
    _observe_shutdown_signals()
    _open_streams.setdefault(loop, set()).add(outbox)
    if _ending_everything or loop in _ending_loops:
        outbox.finish(_SHUTDOWN)


def _unregister(loop: asyncio.AbstractEventLoop, outbox: _Outbox) -> None:
    streams = _open_streams.get(loop)
    if streams is not None:
        streams.discard(outbox)
        if not streams:
            del _open_streams[loop]


# -- the engine ---------------------------------------------------------------------------------


class _Outbox:
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
            self.finish(_OVERFLOW)
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


class _Pump:
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
        self, outbox: _Outbox, send: Send, heartbeat: float | None, send_timeout: float | None
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
            if outbox.chunks and outbox.end not in _ABANDON:
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
        if reason in _ABANDON or reason == _SHUTDOWN:
            self._cut_send_short()

    def _tick(self) -> None:
        now = self._loop.time()
        since = self._sending_since
        if since is not None:
            if self._send_timeout is not None and now - since >= self._send_timeout:
                self.outbox.finish(_STALLED)
                self._cut_send_short()
                return
        elif (
            self._heartbeat is not None
            and now - self._last_sent >= self._heartbeat
            and not self.outbox.chunks
        ):
            self.outbox.write(_HEARTBEAT)
        assert self._interval is not None
        self._timer = self._loop.call_later(self._interval, self._tick)


async def _watch_for_disconnect(receive: Receive, outbox: _Outbox) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass  # the rest of a request body nobody read
    except Exception:
        pass  # a server that fails receive() once the connection is gone: gone all the same
    outbox.finish(_DISCONNECT)


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

    def _new_outbox(self) -> _Outbox:
        return _Outbox(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        outbox = self._new_outbox()
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        watcher = loop.create_task(_watch_for_disconnect(receive, outbox))
        _register(loop, outbox)
        try:
            await self._start(outbox)
            await _Pump(outbox, send, self.heartbeat, self.send_timeout).run()
        finally:
            watcher.cancel()
            _unregister(loop, outbox)
            self.ended = outbox.end
            await self._stop(outbox)
        if self.background is not None:
            await self.background()

    async def _start(self, outbox: _Outbox) -> None:
        raise NotImplementedError

    async def _stop(self, outbox: _Outbox) -> None:
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

    async def _start(self, outbox: _Outbox) -> None:
        if self.retry is not None:
            outbox.write(b"retry: %d\n\n" % self.retry)
        self._producer = asyncio.get_running_loop().create_task(self._produce(outbox))

    async def _produce(self, outbox: _Outbox) -> None:
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
            outbox.finish(_FAILED)
        else:
            outbox.finish(_END_OF_SOURCE)
        finally:
            await _close(items)

    async def _stop(self, outbox: _Outbox) -> None:
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


# -- the hub over ASGI --------------------------------------------------------------------------


class HubStreamResponse(_StreamResponse):
    """A stream of hub topics, with replay or reset from `last_event_id` (see `hub_stream`)."""

    def __init__(
        self,
        hub: Hub,
        topics: Sequence[str],
        last_event_id: str | None,
        *,
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

    def _new_outbox(self) -> _Outbox:
        return _Outbox(self.max_pending_bytes)

    async def _start(self, outbox: _Outbox) -> None:
        hub = self.hub
        await hub.start()
        # The same opening as the native server: a comment so proxies flush, the retry hint.
        outbox.write(b": ssehub\nretry: %d\n\n" % self.retry)
        if self.last_event_id is None:
            hub.open_stream(outbox, self.topics, outbox.write)
        else:
            await hub.resume_stream(outbox, self.topics, outbox.write, self.last_event_id)

    async def _stop(self, outbox: _Outbox) -> None:
        if outbox.end in (_OVERFLOW, _STALLED):
            self.hub.stats.slow_dropped += 1
        self.hub.remove(outbox, self.topics)


def _topic_tuple(topics: str | Iterable[str]) -> tuple[str, ...]:
    names = (topics,) if isinstance(topics, str) else tuple(topics)
    if not names:
        raise ValueError("at least one topic is required")
    return tuple(dict.fromkeys(check_topic(name) for name in names))


def hub_stream(
    hub: Hub,
    request: object,
    topics: str | Iterable[str],
    *,
    last_event_id: str | None = None,
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
    says the gap cannot be filled. Raises ValueError for an invalid topic.
    """
    resume_from = last_event_id if last_event_id is not None else _resume_point(request)
    return HubStreamResponse(
        hub,
        _topic_tuple(topics),
        resume_from,
        heartbeat=heartbeat,
        retry=retry,
        send_timeout=send_timeout,
        max_pending_bytes=max_pending_bytes,
        headers=headers,
    )


class HubApp:
    """The hub's HTTP API as an ASGI app: `GET /events` and `POST /publish` (see CONTRACTS.md).

    Mount it (`app.mount("/sse", hub.asgi_app())`) or serve it alone; served alone, its lifespan
    starts and closes the hub.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        heartbeat: float | None = 15.0,
        retry: int = 3000,
        send_timeout: float | None = 10.0,
        max_pending_bytes: int = 1024 * 1024,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self.hub = hub
        self.heartbeat = heartbeat
        self.retry = retry
        self.send_timeout = send_timeout
        self.max_pending_bytes = max_pending_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"ssehub's hub app serves HTTP, not {scope['type']!r}")
        try:
            reply = await self._handle(scope, receive)
        except HTTPError as error:
            reply = error.response()
        if isinstance(reply, Response):
            await _send_response(send, reply)
        else:
            await reply(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> Response | HubStreamResponse:
        path = _route_path(scope)
        method: str = scope["method"]
        allowed = {"/events": "GET", "/publish": "POST"}.get(path)
        if allowed is None:
            raise HTTPError(404, f"no route for {method} {path}")
        if method != allowed:
            refusal = error_response(405, f"method {method} not allowed on {path}")
            refusal.headers = [("Allow", allowed)]
            return refusal
        if path == "/events":
            request = _request(scope)
            return HubStreamResponse(
                self.hub,
                routes.stream_topics(request),
                routes.last_event_id(request),
                heartbeat=self.heartbeat,
                retry=self.retry,
                send_timeout=self.send_timeout,
                max_pending_bytes=self.max_pending_bytes,
            )
        request = _request(scope, await self._read_body(receive))
        # publish_drafts publishes without suspending when the backend needs no I/O.
        ids = await self.hub.publish_drafts(routes.parse_drafts(request))
        return json_response({"ids": ids})

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client disconnected before sending the whole body")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPError(413, f"body is over the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.hub.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_response(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", b"%d" % len(response.body)),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers
        ),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


#: `hub_app(hub)`: the hub's `/events` and `/publish` as an ASGI app, to mount anywhere.
hub_app = HubApp
