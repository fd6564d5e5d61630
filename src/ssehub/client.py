"""EventSource for Python: a Server-Sent Events client that reconnects and resumes without loss.

```python
with EventSource("http://127.0.0.1:8000/events?topic=orders") as source:
    for event in source:                 # ssehub.Event: .event, .data, .id
        print(event.id, event.event, event.data)

async with AsyncEventSource(url, method="POST", json={"prompt": "hi"}) as source:
    async for event in source:
        ...
```

Both classes behave like the browser's `EventSource` (WHATWG HTML §9.2): they send
`Accept: text/event-stream`, `Cache-Control: no-cache` and, once the stream has given an id,
`Last-Event-ID`; they reconnect after network errors, read timeouts and a clean end of stream,
waiting the server's `retry:` time; HTTP 204 ends the stream; any other status or content type
"fails the connection" (raises `SSEError`, never retried). On top of the browser: exponential
backoff with decorrelated jitter when reconnecting fails repeatedly, a read-inactivity timeout,
request headers that may be recomputed for every connection (token refresh), any method and
body, and `close()` that works from any thread or task, even while a read is stalled.

The reconnection policy lives in one sans-IO class, `_Session`; `EventSource` and
`AsyncEventSource` only do the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import json as jsonlib
import operator
import random
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, Generic, Self, TypedDict, TypeVar, Unpack, overload

import httpx

from ssehub.wire import Decoder, Event

__all__ = [
    "CLOSED",
    "CONNECTING",
    "OPEN",
    "AsyncEventSource",
    "EventSource",
    "ReadyState",
    "SSEError",
    "SourceOptions",
    "backoff_delay",
]

T = TypeVar("T")
H = TypeVar("H")  # what `headers` may be
OpenHook = TypeVar("OpenHook")  # what `on_open` may be
C = TypeVar("C", httpx.Client, httpx.AsyncClient)

#: How much of a refused response's body `SSEError.body` keeps.
ERROR_BODY_LIMIT: Final = 4096

#: Errors after which the source reconnects: the network, timeouts, a stream closed under it.
_RETRYABLE: Final = (httpx.TransportError, httpx.StreamClosed)

Headers = Mapping[str, str]
#: A headers mapping, or a callable returning one, called before every connection.
HeadersSource = Headers | Callable[[], Headers] | None
#: For `AsyncEventSource` the callable may also be a coroutine function.
AsyncHeadersSource = Headers | Callable[[], Headers | Awaitable[Headers]] | None
#: `on_retry(delay_seconds, error)`: called before each reconnection wait.
RetryHook = Callable[[float, BaseException | None], None]


class SourceOptions(TypedDict, total=False):
    """The options `EventSource` and `AsyncEventSource` share (all keyword-only, optional).

    method: HTTP method, "GET" by default (POST with `json` suits LLM-style APIs).
    params: query parameters, added to the URL's (`url` includes them).
    json, content: a request body, sent again with every connection.
    last_event_id: resume from this id (sent as `Last-Event-ID` on the first connection).
    retry: milliseconds to wait before reconnecting, 3000 until the server sends `retry:`.
    max_retry_delay: seconds, 30 by default: the cap of the backoff when reconnecting keeps
        failing (a longer `retry:` from the server is still honoured).
    timeout: seconds to connect, and of read inactivity after which the source reconnects
        (servers should send comments as heartbeats); 60 by default, None waits forever.
    on_retry: `on_retry(delay_seconds, error_or_None)`, called before every reconnection wait.
    token: a bearer token (a JWT for an ssehub or Mercure hub), sent as `Authorization:
        Bearer <token>` with every connection; an `Authorization` from `headers` wins, so a
        headers callable can hand in a fresh token at each reconnection.
    """

    method: str
    params: Any
    json: Any
    content: str | bytes | None
    last_event_id: str
    retry: int
    max_retry_delay: float
    timeout: float | httpx.Timeout | None
    on_retry: RetryHook | None
    token: str | None


class ReadyState(enum.IntEnum):
    """`EventSource.ready_state`, numbered like the browser's `readyState`."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


CONNECTING: Final = ReadyState.CONNECTING
OPEN: Final = ReadyState.OPEN
CLOSED: Final = ReadyState.CLOSED


class SSEError(Exception):
    """The server refused the stream: a status other than 200/204, or not `text/event-stream`.

    Like the browser's "fail the connection", this is final: the source does not reconnect.
    `status_code`, `headers` and `body` (the first 4 KiB of the response body, decoded) say why.
    """

    def __init__(
        self, message: str, *, status_code: int, headers: httpx.Headers, body: str, url: str
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.url = url


def backoff_delay(
    retry_ms: int, failures: int, previous: float, cap: float, rng: random.Random
) -> float:
    """Seconds to wait before reconnecting after `failures` failed connections in a row.

    The first reconnection waits exactly the server's `retry:` time, as a browser does. Repeated
    failures back off with decorrelated jitter (each delay uniform between the retry time and
    three times the previous delay), never longer than `cap`, unless the server's own retry time
    is longer: that one is always honoured.
    """
    base = retry_ms / 1000
    if failures <= 1:
        return base
    floor = max(base, 0.001)
    return max(base, min(cap, rng.uniform(floor, max(previous, floor) * 3)))


def _detail(body: str) -> str:
    """The readable part of an error body: a JSON `error`/`message`/`detail`, or its first line."""
    try:
        parsed = jsonlib.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                return value
    text = body.strip().splitlines()[0] if body.strip() else ""
    return text if len(text) <= 200 else text[:199] + "…"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: building it takes ~20 ms, which
    every `httpx.Client()` pays again; a source that creates its own client shares this one."""
    return httpx.create_ssl_context()


def _new_client() -> httpx.Client:
    return httpx.Client(verify=_ssl_context())


def _new_async_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=_ssl_context())


def _is_event_stream(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


def _shutdown(network_stream: Any) -> None:
    """Wake a reader blocked on this connection (any thread): shut its socket down."""
    try:
        sock = network_stream.get_extra_info("socket")
    except Exception:
        return
    with contextlib.suppress(OSError, AttributeError):
        if isinstance(sock, socket.socket):
            # The base method: an SSLSocket's own would drop its SSL object under the reader.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:  # asyncio's TransportSocket (no TLS at this level: anyio does it in memory)
            sock.shutdown(socket.SHUT_RDWR)


class _Head:
    """The first `ERROR_BODY_LIMIT` bytes of a refused response's body, for `SSEError`."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True once there is enough."""
        self.data += chunk
        return len(self.data) >= ERROR_BODY_LIMIT


class _Verdict(enum.Enum):
    STREAM = "stream"
    DONE = "done"  # 204: the server wants us to stop
    FAIL = "fail"


class _Session:
    """The sans-IO half of an event source: requests, validation, resumption and backoff.

    The I/O drivers (`EventSource`, `AsyncEventSource`) call, per connection attempt:
    `begin()` → `request()` → `verdict()` (→ `failure()`, or `opened()` → `deliver()` for every
    chunk read) → `ended()` → wait the returned delay; and `finish()` when their
    iterator stops. `close()` may be called from any thread.
    """

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        method: str = "GET",
        params: Any = None,
        json: Any = None,
        content: str | bytes | None = None,
        last_event_id: str = "",
        retry: int = 3000,
        max_retry_delay: float = 30.0,
        timeout: float | httpx.Timeout | None = 60.0,
        on_retry: RetryHook | None = None,
        token: str | None = None,
    ) -> None:
        if json is not None and content is not None:
            raise TypeError("pass json or content, not both")
        if retry < 0 or max_retry_delay < 0:
            raise ValueError("retry and max_retry_delay must not be negative")
        url = httpx.URL(url)
        self.url = str(url if params is None else url.copy_merge_params(params))
        self.method = method.upper()
        self.json = json
        self.content = content
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry
        self.max_retry_delay = max_retry_delay
        self.on_retry = on_retry
        self.token = token
        self.ready_state = CONNECTING
        self.closed = False
        #: Called by `close()` to interrupt a reconnection wait; set by the driver.
        self.wake: Callable[[], None] = lambda: None
        # Where the stream stands: `_resume_id` is the last event id as of the start of the
        # chunk being handed out, `_events` that chunk's events, `_handing` the iterator the
        # consumer takes them from (None between chunks): what it has not taken is what is
        # left in it, so the position costs nothing per event.
        self._resume_id = last_event_id
        self._decoder: Decoder | None = None
        self._events: list[Event] = []
        self._handing: Iterator[Event] | None = None
        self._lock = threading.Lock()  # between close() and the chunk hand-over
        self._network: Any = None
        self._delivered = False
        self._failures = 0
        self._delay = 0.0
        self._rng = random.Random()

    @property
    def last_event_id(self) -> str:
        """The id the next connection resumes from (browser: `lastEventId`)."""
        handing = self._handing
        if handing is None:
            return self._resume_id
        return self._position(operator.length_hint(handing))

    def _position(self, left: int) -> str:
        """The last event id once the consumer has taken all but `left` of the chunk's events."""
        if left == 0 and self._decoder is not None:
            return self._decoder.last_event_id  # the whole chunk: ids after its last event too
        taken = len(self._events) - left
        return self._events[taken - 1].id or "" if taken else self._resume_id

    # -- one connection ------------------------------------------------------------------------

    def begin(self) -> bool:
        """Start a connection attempt; False once closed."""
        if self.closed:
            return False
        self.ready_state = CONNECTING
        self._decoder = None
        return True

    def request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        headers: Headers | None,
        trace: Callable[..., Any],
    ) -> httpx.Request:
        """The request for the next connection, with the SSE headers and `Last-Event-ID`."""
        merged = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.token:
            merged["Authorization"] = f"Bearer {self.token}"
        if headers:
            merged.update(headers)
        if self._resume_id:
            merged["Last-Event-ID"] = self._resume_id
        return client.build_request(
            self.method,
            self.url,
            headers=merged,
            json=self.json,
            content=self.content,
            timeout=self.timeout,
            extensions={"trace": trace},
        )

    def traced(self, name: str, info: Mapping[str, Any]) -> None:
        """httpcore trace hook: remember the connection as soon as it exists, for `close()`."""
        if name == "connection.connect_tcp.complete":
            self._attach(info.get("return_value"))

    def _attach(self, network_stream: Any) -> None:
        self._network = network_stream
        if self.closed and network_stream is not None:
            _shutdown(network_stream)

    def verdict(self, response: httpx.Response) -> _Verdict:
        """Whether to read this response as a stream (and remember its connection)."""
        self._attach(response.extensions.get("network_stream", self._network))
        if response.status_code == 204:
            self.closed = True  # for good, as in a browser
            return _Verdict.DONE
        if response.status_code != 200:
            return _Verdict.FAIL
        if not _is_event_stream(response.headers.get("content-type", "")):
            return _Verdict.FAIL
        return _Verdict.STREAM

    @contextlib.contextmanager
    def rejecting(self) -> Iterator[None]:
        """Around `on_open`: if it raises, the response is rejected and the source closes."""
        try:
            yield
        except BaseException:
            self.closed = True
            raise

    def failure(self, response: httpx.Response, head: _Head) -> SSEError:
        """The error for a refused response, given the first bytes of its body."""
        self.closed = True
        body = bytes(head.data[:ERROR_BODY_LIMIT]).decode(response.encoding or "utf-8", "replace")
        where = f"{self.method} {self.url}"
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        content_type = response.headers.get("content-type")
        if response.status_code == 200:
            problem = f"{status} with Content-Type {content_type!r}, not text/event-stream"
        else:
            problem = status
        detail = _detail(body)
        message = f"{where}: {problem}" + (f": {detail}" if detail else "")
        return SSEError(
            message,
            status_code=response.status_code,
            headers=response.headers,
            body=body,
            url=str(response.url),
        )

    def opened(self) -> Decoder:
        """The response is a stream: the decoder for it, carrying the last event id over."""
        self.ready_state = OPEN
        self._delivered = False
        self._decoder = Decoder(self._resume_id)
        return self._decoder

    def deliver(self, decoder: Decoder, chunk: bytes) -> Iterator[Event]:
        """The events in `chunk`, for the driver to hand out with `yield from` (or `for`).

        Called only once the previous chunk's events are all taken. The returned iterator is
        the record of how far the consumer got (see `last_event_id`); `close()` empties it, so
        no event is handed out after `close()`, even from the middle of a chunk.
        """
        with self._lock:
            if self.closed:
                return iter(())
            self._resume_id = decoder.last_event_id
            self._handing = None
        events = decoder.feed(chunk)
        handing = iter(events)
        with self._lock:
            if self.closed:
                return iter(())
            if events:
                self._delivered = True
                self._events = events
                self._handing = handing
            else:  # nothing to hand out, but maybe a new id (`id:` alone, as the hub sends)
                self._resume_id = decoder.last_event_id
        return handing

    def ended(self, error: BaseException | None) -> float | None:
        """The connection ended (or never opened); the delay before the next, None if closed.

        The stream's last event id and `retry:` carry over to the next connection, as they do
        in a browser; a connection that delivered events resets the backoff.
        """
        delivered, self._delivered = self._delivered, False
        self._network = None
        with self._lock:
            if self.closed:
                return None
            decoder, self._decoder, self._handing = self._decoder, None, None
            if decoder is not None:
                self._resume_id = decoder.last_event_id
                if decoder.retry is not None:
                    self.retry = decoder.retry
        self.ready_state = CONNECTING
        self._failures = 1 if delivered else self._failures + 1
        self._delay = backoff_delay(
            self.retry, self._failures, self._delay, self.max_retry_delay, self._rng
        )
        if self.on_retry is not None:
            self.on_retry(self._delay, error)
        return self._delay

    def finish(self) -> None:
        """The iterator stopped (closed, done, failed, or the consumer left the loop)."""
        with self._lock:
            handing, self._handing = self._handing, None
            if handing is not None:
                self._resume_id = self._position(operator.length_hint(handing))
            self._decoder = None
        self._network = None
        self.ready_state = CLOSED

    def close(self) -> None:
        """Stop for good, from any thread: wake a blocked read and a reconnection wait."""
        with self._lock:
            self.closed = True
            self.ready_state = CLOSED
            handing, self._handing = self._handing, None
            if handing is not None:
                # list() takes the rest in one step: the consumer's next() comes before or after.
                self._resume_id = self._position(len(list(handing)))
        network = self._network
        if network is not None:
            _shutdown(network)
        self.wake()


class _FromSession(Generic[T]):
    """A read-only attribute of a source: its session's attribute of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, source: None, owner: type) -> Self: ...
    @overload
    def __get__(self, source: _SourceBase[Any, Any, Any], owner: type) -> T: ...
    def __get__(self, source: _SourceBase[Any, Any, Any] | None, owner: type) -> Self | T:
        if source is None:
            return self
        value: T = getattr(source._session, self._name)
        return value

    def __set__(self, source: _SourceBase[Any, Any, Any], value: T) -> None:
        raise AttributeError(f"{self._name} is read-only")


class _SourceBase(Generic[H, OpenHook, C]):
    """What both sources share: the session (which does the work), hooks and client."""

    def __init__(
        self,
        url: str | httpx.URL,
        headers: H,
        on_open: OpenHook,
        client: C | None,
        new_client: Callable[[], C],
        options: SourceOptions,
    ) -> None:
        self._session = _Session(url, **options)
        self._headers = headers
        self._on_open = on_open
        self._owns_client = client is None
        self._client: C = new_client() if client is None else client
        self._running = 0

    url = _FromSession[str]("The URL the source connects (and reconnects) to.")
    ready_state = _FromSession[ReadyState](
        "CONNECTING (0), OPEN (1) or CLOSED (2), as in browsers."
    )
    last_event_id = _FromSession[str]("The last event id seen; sent as `Last-Event-ID`.")
    retry = _FromSession[int]("The reconnection time in ms: the constructor's, until the server's.")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self.ready_state.name}>"


class EventSource(
    _SourceBase[HeadersSource, Callable[[httpx.Response], None] | None, httpx.Client]
):
    """A resuming Server-Sent Events stream, iterated with a plain `for`.

    Args:
        url: the stream's URL.
        headers: extra request headers, or a callable returning them, called before every
            connection (so a token can be refreshed).
        on_open: `on_open(response)` for every accepted stream, before any event; raise to
            reject it (the exception propagates and the source closes).
        client: an `httpx.Client` to use; it is not closed by this source.
        **options: method, params, json, content, last_event_id, retry, max_retry_delay,
            timeout, on_retry: see `SourceOptions`.
    """

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        headers: HeadersSource = None,
        on_open: Callable[[httpx.Response], None] | None = None,
        client: httpx.Client | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(url, headers, on_open, client, _new_client, options)
        self._stop = threading.Event()
        self._session.wake = self._stop.set
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Event]:
        return self._events()

    def _events(self) -> Iterator[Event]:
        session = self._session
        with self._lock:
            self._running += 1
        try:
            while session.begin():
                try:
                    response = self._connect()
                    try:
                        if not self._accept(response):
                            return
                        decoder = session.opened()
                        for chunk in response.iter_bytes():
                            yield from session.deliver(decoder, chunk)
                    finally:
                        response.close()
                except _RETRYABLE as exc:
                    delay = session.ended(exc)
                else:
                    delay = session.ended(None)
                if delay is None or self._stop.wait(delay):  # wait() is True once closed
                    return
        finally:
            session.finish()
            with self._lock:
                self._running -= 1
                release = self._running == 0 and session.closed
            if release:
                self._release()

    def _connect(self) -> httpx.Response:
        headers = self._headers() if callable(self._headers) else self._headers
        request = self._session.request(self._client, headers, self._session.traced)
        return self._client.send(request, stream=True, follow_redirects=True)

    def _accept(self, response: httpx.Response) -> bool:
        verdict = self._session.verdict(response)
        if verdict is _Verdict.FAIL:
            head = _Head()
            for chunk in response.iter_bytes():
                if head.add(chunk):
                    break
            raise self._session.failure(response, head)
        if verdict is _Verdict.STREAM and self._on_open is not None:
            with self._session.rejecting():
                self._on_open(response)
        return verdict is _Verdict.STREAM

    def close(self) -> None:
        """Stop, from any thread: the iteration ends promptly, even mid-read or mid-wait."""
        self._session.close()
        with self._lock:
            release = self._running == 0
        if release:
            self._release()

    def _release(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EventSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEventSource(
    _SourceBase[
        AsyncHeadersSource,
        Callable[[httpx.Response], Awaitable[None] | None] | None,
        httpx.AsyncClient,
    ]
):
    """The asyncio twin of `EventSource`, iterated with `async for`.

    Takes the same arguments, except that `headers` may be a coroutine function, `on_open` may
    be async, and `client` is an `httpx.AsyncClient`. `close()` may be called from any task or
    thread; `aclose()` (or leaving `async with`) also releases the client it created.
    """

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        headers: AsyncHeadersSource = None,
        on_open: Callable[[httpx.Response], Awaitable[None] | None] | None = None,
        client: httpx.AsyncClient | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(url, headers, on_open, client, _new_async_client, options)
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session.wake = self._wake

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        session = self._session
        self._loop = asyncio.get_running_loop()
        self._running += 1
        try:
            while session.begin():
                try:
                    response = await self._connect()
                    try:
                        if not await self._accept(response):
                            return
                        decoder = session.opened()
                        async for chunk in response.aiter_bytes():
                            for event in session.deliver(decoder, chunk):
                                yield event
                    finally:
                        await response.aclose()
                except _RETRYABLE as exc:
                    delay = session.ended(exc)
                else:
                    delay = session.ended(None)
                if delay is None or await self._sleep(delay):
                    return
        finally:
            session.finish()
            self._running -= 1
            if self._running == 0 and session.closed:
                await self._release()

    async def _sleep(self, delay: float) -> bool:
        """Wait `delay` seconds, or less if closed; True once closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        return self._stop.is_set()

    async def _connect(self) -> httpx.Response:
        headers = self._headers() if callable(self._headers) else self._headers
        if inspect.isawaitable(headers):
            headers = await headers
        request = self._session.request(self._client, headers, self._trace)
        return await self._client.send(request, stream=True, follow_redirects=True)

    async def _trace(self, name: str, info: Mapping[str, Any]) -> None:
        self._session.traced(name, info)

    async def _accept(self, response: httpx.Response) -> bool:
        verdict = self._session.verdict(response)
        if verdict is _Verdict.FAIL:
            head = _Head()
            async for chunk in response.aiter_bytes():
                if head.add(chunk):
                    break
            raise self._session.failure(response, head)
        if verdict is _Verdict.STREAM and self._on_open is not None:
            with self._session.rejecting():
                opened = self._on_open(response)
                if inspect.isawaitable(opened):
                    await opened
        return verdict is _Verdict.STREAM

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._stop.set()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing waits on it
                loop.call_soon_threadsafe(self._stop.set)

    def close(self) -> None:
        """Stop, from any task or thread: the iteration ends promptly, even mid-read or wait.

        Does not release a client this source created; `aclose()` does both.
        """
        self._session.close()

    async def aclose(self) -> None:
        """Stop, and release the client this source created once no iteration is running."""
        self._session.close()
        if self._running == 0:
            await self._release()

    async def _release(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncEventSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
