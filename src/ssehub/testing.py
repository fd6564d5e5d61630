"""Test helpers for apps that stream Server-Sent Events: no network, no hang.

An endless event stream is what makes SSE awkward to test: an HTTP test client waits for a body
that never ends, and cancelling it leaves the app's generator running. These helpers drive an
ASGI app directly, as a server would (a scope, `receive` and `send`), decode what it sends with
`ssehub.wire.Decoder`, stop after the events you ask for (or fail after a timeout), then send
`http.disconnect` and wait for the app to end its response, so its generator is closed and its
`finally` runs before your test goes on.

```python
from ssehub.testing import assert_events, read_events, stream

async def test_clock() -> None:
    events = await read_events(app, "/clock", count=3)          # the first 3, then disconnect
    assert_events(events, ["tick 0", "tick 1", Event("tick 2", id="2")])

async def test_hub() -> None:
    async with Hub() as hub, stream(hub.asgi_app(), "/events?topic=t") as events:
        await events.position()                   # subscribed: the hub said where it stands
        await hub.publish("t", "hello")
        assert_events(await events.take(1), ["hello"])
```

It works with anything that speaks ASGI 3: `hub.asgi_app()`, `ssehub.asgi` responses,
sse-starlette's `EventSourceResponse`, FastAPI/Starlette `StreamingResponse`. Only the `http`
scope is driven, not the lifespan: start what your app's lifespan would (`async with Hub()`)
in the test. Imports: `ssehub.wire` and the standard library only.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

from ssehub.wire import Decoder, Event

__all__ = [
    "EventStream",
    "RequestOptions",
    "assert_events",
    "decode",
    "read_events",
    "read_events_sync",
    "stream",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

#: Seconds to wait for anything (the response's start, each event, the app's end) by default.
DEFAULT_TIMEOUT = 5.0


class RequestOptions(TypedDict, total=False):
    """What `read_events` and `read_events_sync` pass on to `stream`, which gives the defaults:
    `method` ("GET"), `headers` (a mapping or pairs), `body` (b""), `last_event_id` (sent as the
    `Last-Event-ID` header), `timeout` (DEFAULT_TIMEOUT seconds)."""

    method: str
    headers: Mapping[str, str] | Iterable[tuple[str, str]]
    body: bytes
    last_event_id: str | None
    timeout: float


class EventStream:
    """One response of an ASGI app, read as it is sent.

    `status` and `headers` (names lower-case; repeated ones joined with ", ") are there once the
    stream is open; `body` holds every byte received so far, and `decoder` the parser's state
    (`decoder.last_event_id`, `decoder.retry`). `ended` is True once the app sent its last body
    message.
    """

    def __init__(self, request_body: bytes, timeout: float) -> None:
        self.timeout = timeout
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.decoder = Decoder()
        self.ended = False
        self._request_body: bytes | None = request_body
        self._events: list[Event] = []
        self._taken = 0
        self._changed = asyncio.Event()
        self._gone = asyncio.Event()
        self._app: asyncio.Future[None] | None = None

    # -- reading ------------------------------------------------------------------------------

    async def next(self) -> Event:
        """The next event; AssertionError if the body ends or `timeout` passes first."""
        [event] = await self.take(1)
        return event

    async def take(self, count: int) -> list[Event]:
        """The next `count` events; AssertionError if they do not all arrive in `timeout`."""
        wanted = self._taken + count
        await self._wait(lambda: len(self._events) >= wanted, f"{count} event(s)")
        taken, self._taken = self._events[self._taken : wanted], wanted
        return taken

    async def rest(self) -> list[Event]:
        """Every event not yet taken, once the app has ended the body (within `timeout`)."""
        await self._wait(lambda: self.ended, "the end of the body")
        taken, self._taken = self._events[self._taken :], len(self._events)
        return taken

    async def position(self) -> str:
        """Wait until the stream has set a last event id, and return it.

        A hub stream's opening says where the hub stands (`id:` with no data) before any event:
        once this returns, the subscription is live and nothing published after it is missed.
        """
        await self._wait(lambda: self.decoder.last_event_id != "", "an id: field")
        return self.decoder.last_event_id

    async def _wait(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                while not condition():
                    if self.ended or (self._app is not None and self._app.done()):
                        raise AssertionError(f"the response ended before {what}; {self._so_far()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} within {self.timeout} s; {self._so_far()}") from None

    def _so_far(self) -> str:
        arrived = len(self._events) - self._taken
        return f"{arrived} arrived; status {self.status}, last bytes: {bytes(self.body[-300:])!r}"

    # -- the server's side ----------------------------------------------------------------------

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        self._app = asyncio.ensure_future(app(scope, self._receive, self._send))
        self._app.add_done_callback(lambda _: self._changed.set())
        await self._wait(lambda: self.status != 0, "response start")

    async def _receive(self) -> Message:
        if self._request_body is not None:
            body, self._request_body = self._request_body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self._gone.is_set():
            # Dropped, as uvicorn does under spec 2.3 (raising OSError is 2.4's rule): an app
            # learns of the disconnect from receive(), and Starlette then cancels the body's
            # iterator where it awaits, so a generator's `finally` runs.
            return
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            for raw_name, raw_value in message.get("headers", ()):
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                joined = f"{self.headers[name]}, {value}" if name in self.headers else value
                self.headers[name] = joined
        elif kind == "http.response.body":
            chunk = bytes(message.get("body", b""))
            self.body += chunk
            self._events += self.decoder.feed(chunk)
            self.ended = not message.get("more_body", False)
        self._changed.set()

    async def _disconnect(self) -> None:
        """`http.disconnect`, then wait for the app to end (cancelled after `timeout`)."""
        self._gone.set()
        app = self._app
        if app is None:
            return
        done, _ = await asyncio.wait([app], timeout=self.timeout)
        if not done:
            app.cancel()
            await asyncio.gather(app, return_exceptions=True)
            raise AssertionError(
                f"the app was still running {self.timeout} s after http.disconnect; "
                "it was cancelled"
            )
        if not app.cancelled() and (error := app.exception()) is not None:
            raise error


def _scope(method: str, target: str, headers: list[tuple[str, str]]) -> Scope:
    url = urlsplit(target)
    if not any(name.lower() == "host" for name, _ in headers):
        headers = [("host", "testserver"), *headers]
    return {
        "type": "http",
        # 2.3, as uvicorn's httptools protocol declares: frameworks then listen for
        # http.disconnect (from 2.4 on, Starlette relies on send() raising OSError instead).
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": url.path or "/",
        "raw_path": (url.path or "/").encode(),
        "query_string": url.query.encode(),
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ],
        # A loopback peer, like a browser on the developer's machine: the hub lets loopback
        # publish when no authorization is configured.
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


@asynccontextmanager
async def stream(
    app: ASGIApp,
    target: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    last_event_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[EventStream]:
    """Open `target` (a path and its query) on `app`; yields the stream once its status is in.

    On leaving the block the client disconnects (`http.disconnect`) and the app must end its
    response within `timeout`: an app still running then is cancelled, and AssertionError says
    so. An exception the app raised is raised here.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if last_event_id is not None:
        pairs.append(("last-event-id", last_event_id))
    if body and not any(name.lower() == "content-length" for name, _ in pairs):
        pairs.append(("content-length", str(len(body))))
    events = EventStream(body, timeout)
    try:
        await events._run(app, _scope(method, target, pairs))
        yield events
    finally:
        await events._disconnect()


async def read_events(
    app: ASGIApp, target: str, count: int, **options: Unpack[RequestOptions]
) -> list[Event]:
    """The first `count` events of `target` on `app`, then disconnect (see `stream`)."""
    async with stream(app, target, **options) as events:
        return await events.take(count)


def read_events_sync(
    app: ASGIApp, target: str, count: int, **options: Unpack[RequestOptions]
) -> list[Event]:
    """`read_events` from synchronous code, in an event loop of its own.

    For apps whose streams need nothing from another loop: a `Hub` belongs to the loop that
    started it, so test a hub's streams with `read_events` in the hub's loop instead.
    """
    return asyncio.run(read_events(app, target, count, **options))


# -- assertions -------------------------------------------------------------------------------


def decode(body: bytes | str) -> list[Event]:
    """The events of a whole `text/event-stream` body, as a browser would dispatch them."""
    return Decoder().feed(body.encode() if isinstance(body, str) else body)


def assert_events(actual: bytes | str | Iterable[Event], expected: Iterable[Event | str]) -> None:
    """Assert that a stream's events are `expected`, with a readable diff when they are not.

    `actual` is a body (bytes or text, decoded with `ssehub.wire.Decoder`) or decoded events.
    An expected `str` is a "message" event with that data; an expected `Event` must match its
    `data` and `event`, and its `id` when that is not None (decoded events carry the last event
    id in effect, so leave it None where it does not matter). `retry` is not compared: the
    stream's reconnection time is `decoder.retry`.
    """
    got = decode(actual) if isinstance(actual, (bytes, str)) else list(actual)
    wanted = [Event(item) if isinstance(item, str) else item for item in expected]
    # An id is compared where the expected event gives one.
    ids = [event.id is not None for event in wanted]
    wanted_lines = [_describe(event, event.id is not None) for event in wanted]
    got_lines = [
        _describe(event, index < len(ids) and ids[index]) for index, event in enumerate(got)
    ]
    if got_lines != wanted_lines:
        diff = "\n".join(line.rstrip("\n") for line in difflib.ndiff(wanted_lines, got_lines))
        raise AssertionError(
            f"events differ (- expected, + actual; {len(wanted)} expected, {len(got)} got):\n{diff}"
        )


def _describe(event: Event, with_id: bool) -> str:
    parts = [f"event={event.event!r}", f"data={event.data!r}"]
    if with_id:
        parts.append(f"id={event.id!r}")
    return " ".join(parts)
