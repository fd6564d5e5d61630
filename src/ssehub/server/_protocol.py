"""One HTTP/1.1 connection: httptools parses, the API decides, bytes go to the transport.

A connection is either a publisher's keep-alive connection (request, response, repeat; pipelined
requests answered in order) or, after a GET /events, an event stream: from then on the hub writes
straight into this transport, and the only thing this object still does is notice when the peer
is gone or too slow.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from functools import partial
from typing import TYPE_CHECKING, TypeVar, cast

import httptools

from ssehub._logging import log_access
from ssehub.api import (
    Audience,
    HTTPError,
    Request,
    Response,
    StreamReply,
    body_too_large,
    ids_response,
    opening,
)
from ssehub.backends import StoreUnavailable
from ssehub.hub import SlowSubscriberError
from ssehub.model import Draft
from ssehub.server._http1 import id_reply, response_head, stream_head

try:
    from ssehub.server._publish_c import parse as parse_plain_publish
except ImportError:  # built without a C compiler: every request takes the general path
    parse_plain_publish = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable

    from ssehub.server._app import ServerState

__all__ = ["HttpProtocol", "PublishGroup"]


_T = TypeVar("_T")

# What a connection from the reserve may ask for (see ServerState.admit).
_RESERVED_PATHS = frozenset({"/healthz", "/metrics"})
_MAX_PIPELINED = 32
# Shared empty values for streams, which never parse again (see _start_stream).
_NOTHING_QUEUED: list[tuple[Request, bool]] = []
_NO_HEADERS: dict[str, str] = {}
_NO_RAW_HEADERS: list[tuple[bytes, bytes]] = []
_NO_BODY: list[bytes] = []
# What the fast path's publishes look like to the code that answers them.
_PLAIN_PUBLISH = Request("POST", "/publish", {}, _NO_HEADERS)


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_access",
        "_body",
        "_body_bytes",
        "_busy",
        "_client",
        "_deadline",
        "_drained",
        "_failure",
        "_fast_path",
        "_header_bytes",
        "_headers",
        "_keep_alive",
        "_on_close",
        "_partial",
        "_peer_done",
        "_queue",
        "_raw_headers",
        "_reserve",
        "_sent",
        "_started",
        "_stream_request",
        "_task",
        "_url",
        "parser",
        "state",
        "topics",
        "transport",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        # Requests pipelined after one with Connection: close are not served (see _closing), as
        # HTTP says; without this, llhttp would fail the whole batch, the request with close too.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.topics: tuple[str, ...] = ()
        self._on_close: Callable[[], None] | None = None  # StreamReply.on_close
        self._url = b""
        self._headers: dict[str, str] = {}
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._queue: list[tuple[Request, bool]] = []
        self._busy = False
        self._keep_alive = True
        self._partial = False  # httptools holds part of a request
        self._task: asyncio.Task[None] | None = None
        # When the connection is closed: an unfinished request's timeout, or a stream's token
        # expiry; 0 for neither. Checked now and then by ServerState (`close_if_idle`).
        self._deadline = 0.0
        self._failure: HTTPError | None = None  # for a request that could not be parsed
        self._client = ""  # the peer's address
        self._fast_path = False  # may plain publishes take the C fast path (see connection_made)
        self._reserve = False  # past --max-connections: answers /healthz and /metrics only
        self._peer_done = False  # the client half-closed: close once its answers are out
        # While a stream catches up: done once the peer has drained its buffer (see _drain).
        self._drained: asyncio.Future[None] | None = None
        # --access-log: checked once per request; the stream's bytes are counted only then.
        self._access = state.config.access_log
        self._started = 0.0  # when the request being answered was taken up (access log)
        self._sent = 0  # bytes written to a stream (access log)
        self._stream_request: tuple[str, str] | None = None  # a stream's method and path

    # -- connection events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        state = self.state
        peer = transport.get_extra_info("peername")
        # Interned: the connections of one peer share one string.
        self._client = sys.intern(peer[0]) if isinstance(peer, tuple) else ""
        refusal = state.admit(self._client)
        if refusal is not None:
            state.traffic.count_rejection(503)
            reply = HTTPError(503, refusal).response()
            answer = response_head(reply, False, [("Retry-After", "1")]) + reply.body
            transport.write(answer)
            transport.close()
            if self._access:
                log_access(self._client, "-", "-", 503, len(answer), 0.0)
            return
        state.connections.add(self)
        state.traffic.connections += 1
        self._reserve = len(state.connections) > state.config.max_connections
        self._fast_path = (
            parse_plain_publish is not None
            and not self._reserve
            and state.fast_path_for(self._client)
        )
        self._wait_for_request()

    def _wait_for_request(self) -> None:
        # A connection that does not finish a request in time (idle keep-alive, or a slow drip
        # of headers) gives its slot back; ServerState checks deadlines now and then, which
        # costs far less than a timer per request.
        self._deadline = self.state.now() + self.state.config.idle_timeout

    def close_if_idle(self, now: float) -> None:
        if self._deadline and now > self._deadline and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if self in state.connections:
            state.connections.discard(self)
            state.traffic.connections -= 1
            state.release(self._client)
        if self.topics:
            state.hub.remove(self, self.topics)
            state.traffic.open_streams -= 1
            if self._stream_request is not None:  # --access-log
                method, path = self._stream_request
                log_access(self._client, method, path, 200, self._sent, self._duration())
            if self._on_close is not None:
                self._on_close()
        if self._task is not None:
            self._task.cancel()
        self.parser = None
        state.connection_closed()

    def eof_received(self) -> bool:
        """The client has sent all it will (a half-close): answer what it asked for first.

        True keeps the connection open for the answers still owed; `_serve_next` closes it
        once they are out. A stream's client never half-closes (EventSource does not): its
        EOF means it has gone, and the stream ends at once.
        """
        self._peer_done = True
        if self.topics:
            return False
        return bool(self._busy or self._queue or self._failure is not None)

    def pause_writing(self) -> None:
        # The peer stopped reading and its buffer passed the limit: drop it so it cannot hold
        # memory or slow anyone; it reconnects and resumes from history. A stream catching up
        # is written as it reads (`_drain`), so there the peer is only behind, not too slow.
        if self._drained is not None:
            self._drained = asyncio.get_running_loop().create_future()
        elif self.topics and self.transport is not None:
            self.state.hub.stats.slow_dropped += 1
            self.transport.abort()

    def resume_writing(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def _drain(self) -> None:
        """Return once the peer has taken what was written (its buffer is below the low mark);
        a peer that stops reading for --idle-timeout is cut."""
        drained = self._drained
        if drained is not None and not drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(drained), self.state.config.idle_timeout)
            except TimeoutError:
                raise SlowSubscriberError("stopped reading while catching up") from None

    def data_received(self, data: bytes) -> None:
        if self.parser is None or self.topics:
            return  # a stream's peer has nothing more to say; EOF is noticed by connection_lost
        if self._fast_path and not (self._partial or self._queue or self._busy):
            data = self._publish_plain(data)
            if not data:
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HTTPError):
                self._fail(cause)
            else:
                self.state.errors.report("reading a request", cause or error)
                self._fail(HTTPError(500, "internal error while reading the request"))
            return
        except httptools.HttpParserUpgrade:
            self._fail(HTTPError(400, "protocol upgrades are not supported"))
            return
        except httptools.HttpParserError as error:
            self._fail(HTTPError(400, f"malformed HTTP request: {error}"))
            return
        self._serve_next()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._partial = True
        self._url = b""
        self._raw_headers = []
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0

    # The size limits are checked as the bytes arrive, so an oversized request costs no more
    # memory than the limit; the checks are inlined because these run for every request.

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self.state.config.max_header_bytes:
            self._headers_too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.state.config.max_header_bytes:
            self._headers_too_large()

    def on_headers_complete(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self._raw_headers:
            key = name.lower().decode("latin-1")
            text = value.decode("latin-1")
            # Repeated headers combine as one comma-separated list (RFC 9110, 5.3).
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._headers = headers
        length = headers.get("content-length")
        limit = self.state.config.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)
        if (
            "expect" in headers
            and headers["expect"].lower() == "100-continue"
            and self.transport
            and not (self._queue or self._busy)  # else it would precede earlier answers
        ):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for this

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._body_bytes += len(body)
        limit = self.state.config.max_body_bytes
        if self._body_bytes > limit:
            raise body_too_large(limit)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self._partial = False
        method = self.parser.get_method().decode("ascii")
        request = Request.parse_target(
            method, self._url.decode("latin-1"), self._headers, self._client
        )
        request.http_version = self.parser.get_http_version()
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        self._deadline = 0.0
        self._queue.append((request, self.parser.should_keep_alive()))
        if len(self._queue) > _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()

    def _headers_too_large(self) -> None:
        limit = self.state.config.max_header_bytes
        raise HTTPError(431, f"request line and headers are over the limit of {limit} bytes")

    # -- the fast path ------------------------------------------------------------------------

    def _publish_plain(self, data: bytes) -> bytes:
        """Take a plain form publish from the start of `data`; return the rest for httptools.

        Most requests a hub sees are `POST /publish` with a small form body, and reading them
        through httptools' callbacks costs more than publishing them. `parse_plain_publish`
        (C) reads exactly those and declines everything else, which the general path then reads.
        A publish it reads joins this turn's `PublishGroup`, which answers it; until then the
        connection is busy, and what it pipelined after the publish waits in httptools' queue.

        With an authorization policy, the C code declines any header it does not know and hands
        back the Authorization header; the policy then judges it here with the same code as the
        general path (a verified token is cached), and anything it would refuse is declined, so
        that the general path answers it with the same 401 or 403.
        """
        assert parse_plain_publish is not None
        state = self.state
        config = state.config
        policy = config.policy
        fields = parse_plain_publish(
            data, 0, config.max_header_bytes, config.max_body_bytes, policy is not None
        )
        if fields is None:
            return data
        end, keep_alive, topic, text, event, retry, encoded, authorization, host = fields
        if not state.host_served(host) or (
            policy is not None and not state.may_publish_plain(authorization, topic)
        ):
            return data  # the general path answers it, as it answers any request
        self._busy = True
        self._deadline = 0.0
        if self._access:
            self._started = time.monotonic()
        if not keep_alive:
            self.parser = None  # nothing sent after Connection: close is served
        self.state.publish_group.add(self, keep_alive, Draft((topic,), text, event, retry, encoded))
        return data[end:] if keep_alive else b""

    # -- answering ----------------------------------------------------------------------------

    def _closing(self) -> bool:
        # After an answer with Connection: close, whatever else the client sent is not served.
        return self.transport is None or self.transport.is_closing()

    def _serve_next(self) -> None:
        while self._queue and not (self._busy or self.topics or self._closing()):
            request, keep_alive = self._queue.pop(0)
            self._keep_alive = keep_alive
            if self._access:
                self._started = time.monotonic()
            if self._reserve and request.path not in _RESERVED_PATHS:
                # A connection past --max-connections is kept for a load balancer's checks.
                self._keep_alive = False
                refusal = HTTPError(503, "too many connections; retry later")
                self._respond(request, refusal.response())
                continue
            self._reply(request, self.state.api.handle, request)
        if self._failure is not None:
            # What could not be parsed is answered after everything read before it.
            if not (self._queue or self._busy or self.topics):
                self._send_failure()
            return
        if not self._queue and self.transport is not None and not self.topics:
            if self._peer_done and not self._busy:
                self.transport.close()  # every answer owed is out; the client sent its last
                return
            self.transport.resume_reading()

    def _reply(
        self,
        request: Request,
        handler: Callable[[_T], Response | StreamReply | Awaitable[Response | StreamReply]],
        argument: _T,
    ) -> None:
        try:
            reply = handler(argument)
        except HTTPError as error:
            self._respond(request, error.response())
            return
        except Exception as error:  # a bug: answered, counted, the connection goes on
            self.state.errors.report(f"handling {request.method} {request.path}", error)
            self._respond(request, HTTPError(500, "internal error").response())
            return
        if isinstance(reply, (Response, StreamReply)):
            self._answer(request, reply)
        else:
            self._busy = True
            self._task = asyncio.ensure_future(self._await_reply(request, reply))
            self.state.hub.let_ready_run_first()  # a publish's write goes out a slice sooner

    def publish_alone(self, keep_alive: bool, draft: Draft) -> None:
        """The `PublishGroup` could not publish this connection's publish (the backend needs
        I/O): publish and answer it as the general path does, then serve what came next."""
        self._busy = False
        self._keep_alive = keep_alive
        self._reply(_PLAIN_PUBLISH, self.state.api.publish_drafts, [draft])
        self._serve_next()

    def answer_publish(self, keep_alive: bool, event_id: str, deadline: float) -> None:
        """Answer this connection's publish in the `PublishGroup`, then serve what came next."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if keep_alive and not self.state.closing:
            reply = id_reply(event_id)
            transport.write(reply)
            if self._access:
                log_access(self._client, "POST", "/publish", 200, len(reply), self._duration())
        else:
            self._keep_alive = False
            self._respond(_PLAIN_PUBLISH, ids_response([event_id]))
        self._busy = False
        if self._queue or self._failure is not None or self._peer_done:
            self._serve_next()
        elif self._deadline == 0.0:
            self._deadline = deadline

    def _respond_paced(self, request: Request, reply: Response) -> None:
        self._busy = False
        self._respond(request, reply)
        self._serve_next()

    async def _await_reply(
        self, request: Request, pending: Awaitable[Response | StreamReply]
    ) -> None:
        try:
            reply = await pending
        except HTTPError as error:
            reply = error.response()
        except Exception as error:
            self.state.errors.report(f"handling {request.method} {request.path}", error)
            reply = HTTPError(500, "internal error").response()
        self._task = None
        self._busy = False
        self._answer(request, reply)
        self._serve_next()

    def _answer(self, request: Request, reply: Response | StreamReply) -> None:
        if isinstance(reply, Response) and reply.paced and self.state.hub.publishers_wait():
            # Later, in order: the next request of this connection waits until then.
            self._busy = True
            self.state.hub.hold_publisher(partial(self._respond_paced, request, reply))
        else:
            self._respond(request, reply)

    def _respond(self, request: Request, reply: Response | StreamReply) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(reply, StreamReply):
            self._start_stream(request, reply)
            return
        if reply.status >= 400:
            self.state.traffic.count_rejection(reply.status)
        keep_alive = self._keep_alive and not self.state.closing
        head = response_head(reply, keep_alive, self.state.api.cors.headers(request))
        answer = head if request.method == "HEAD" else head + reply.body
        transport.write(answer)
        if self._access:
            log_access(
                self._client,
                request.method,
                request.path,
                reply.status,
                len(answer),
                self._duration(),
            )
        if not keep_alive:
            transport.close()
        elif not self._queue and not self._deadline:
            self._wait_for_request()

    def _fail(self, error: HTTPError) -> None:
        """A request we cannot even parse: answer it and close, the stream is out of sync.

        The requests read before it, in the same read or earlier, are answered first, and so
        is any answer still owed (a publish in this turn's group, one held back or waiting for
        the store): see `_serve_next`.
        """
        self.parser = None
        self._failure = error
        self._serve_next()

    def _send_failure(self) -> None:
        error, self._failure = self._failure, None
        self._keep_alive = False
        if self.transport is not None and error is not None:
            self.state.traffic.count_rejection(error.status)
            reply = error.response()
            answer = response_head(reply, False, ()) + reply.body
            self.transport.write(answer)
            self.transport.close()
            if self._access:  # what it asked for could not be read
                log_access(self._client, "-", "-", error.status, len(answer), 0.0)

    def _start_stream(self, request: Request, reply: StreamReply) -> None:
        transport = self.transport
        assert transport is not None
        state = self.state
        self.topics = reply.topics
        self._on_close = reply.on_close
        # An idle stream should cost as little as possible: drop everything the request needed.
        self.parser = None
        self._queue = _NOTHING_QUEUED
        self._url = b""
        self._headers = _NO_HEADERS
        self._raw_headers = _NO_RAW_HEADERS
        self._body = _NO_BODY
        state.traffic.open_streams += 1
        # Past this many unsent bytes the peer counts as too slow (see pause_writing).
        transport.set_write_buffer_limits(high=state.config.max_buffer_bytes)
        head = stream_head([*reply.headers, *state.api.cors.headers(request)])
        head += opening(state.config.retry)
        transport.write(head)
        write: Callable[[bytes], None] = transport.write
        if self._access:
            self._stream_request = (request.method, request.path)  # not its headers
            self._sent = len(head)
            write = self._write_counted
        if reply.expires is not None:
            # The token's expiry ends the stream (a clean end: what is buffered goes first);
            # the client comes back with a fresh token, so a revoked grant lasts no longer.
            # A stream has no request to wait for, so its deadline is free to say when: the
            # check that closes idle connections closes it (no timer per stream).
            self._deadline = state.now() + max(0.0, reply.expires - time.time())
        if reply.last_event_id is None:
            state.hub.open_stream(self, self.topics, write, reply.audience)
        else:
            self._task = asyncio.ensure_future(
                self._resume(reply.last_event_id, reply.audience, write)
            )

    def _write_counted(self, data: bytes) -> None:
        """A stream's writer under --access-log, which reports the bytes a stream sent."""
        self._sent += len(data)
        if self.transport is not None:
            self.transport.write(data)

    def _duration(self) -> float:
        return time.monotonic() - self._started

    async def _resume(
        self, last_event_id: str, audience: Audience | None, write: Callable[[bytes], None]
    ) -> None:
        transport = self.transport
        assert transport is not None
        hub = self.state.hub
        # Catching up: paced by the peer, not counted as slow; nothing to wait for yet.
        self._drained = asyncio.get_running_loop().create_future()
        self._drained.set_result(None)
        try:
            await hub.resume_stream(self, self.topics, write, last_event_id, audience, self._drain)
            await self._drain()  # what the last slice left in the buffer
        except SlowSubscriberError:
            hub.stats.slow_dropped += 1
            transport.abort()
        except Exception as error:
            # The client retries and resumes: StoreUnavailable while the store is away.
            self.state.errors.report("replaying a stream's history (closed; it retries)", error)
            transport.close()
        self._drained = None
        self._task = None

    # -- shutdown -----------------------------------------------------------------------------

    def write_heartbeat(self, beat: bytes) -> None:
        if self.topics and self.transport is not None:
            self.transport.write(beat)
            if self._access:
                self._sent += len(beat)

    def shutdown(self) -> None:
        """End the connection for a server shutdown: streams at once, publishers when idle."""
        if self.transport is None:
            return
        if self.topics or not self._busy:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class PublishGroup:
    """The plain publishes read in one turn of the event loop, published together.

    Under load the server reads several publishes per turn of the loop, one from each busy
    publisher (four or five per turn in the publish benchmark). They are published with one call
    into the hub once the turn's reads are done, before the loop waits for I/O again, and each
    publisher is answered its id. One call for the group costs far less than one for each.

    A publisher that publishes alone (the previous turn brought one publish, or the previous
    group was a single one) is published at once instead: see `add`.

    A store whose writes have a fixed cost (a SQLite transaction) gets one more poll of the
    sockets before the group is written, so that the publishers answered in the last turn can
    join it.

    A store that needs I/O (SQLite, Redis) gets the group as one write too, awaited in one
    task: one transaction, one Redis script for the turn's publishes. If it refuses the write,
    nothing was stored and each publish is tried again alone, so that a write the store refuses
    fails only the publisher that sent it.
    """

    __slots__ = (
        "_alone_this_turn",
        "_call_soon",
        "_entries",
        "_gathered",
        "_grouping",
        "_state",
        "_writes",
    )

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._call_soon = asyncio.get_running_loop().call_soon
        self._entries: list[tuple[HttpProtocol, bool, Draft]] = []
        self._grouping = False
        self._gathered = False  # this group had its one more poll (see `_publish`)
        self._alone_this_turn = 0  # publishes published at once in this turn (0: not counting)
        self._writes: set[asyncio.Future[None]] = set()  # group writes waiting for the store

    def add(self, connection: HttpProtocol, keep_alive: bool, draft: Draft) -> None:
        """Publish `draft` for `connection`, whose next request waits until this is answered."""
        entries = self._entries
        entries.append((connection, keep_alive, draft))
        if len(entries) > 1:
            return  # this turn's group is forming
        if self._grouping:
            self._call_soon(self._publish)
            return
        # Publishes have been arriving one per turn: waiting for the rest of the turn would only
        # delay each event, and the events of a sweep under way would then be fewer per write
        # (measured: 15% fewer deliveries/s with one publisher and 1000 subscribers). So they are
        # published at once, and counted: a turn that brings several turns grouping back on.
        if not self._alone_this_turn:
            self._call_soon(self._end_turn)
        self._alone_this_turn += 1
        self._publish()

    def _end_turn(self) -> None:
        self._grouping = self._alone_this_turn > 1
        self._alone_this_turn = 0

    def _publish(self) -> None:
        if self._grouping and not self._gathered and self._state.hub.store.fixed_write_cost:
            # Publishers answered in the last turn are sending their next publish: one more
            # poll of the sockets adds them to this group's write, whose cost is mostly fixed
            # (measured on SQLite, 8 publishers: 7% more publishes/s).
            self._gathered = True
            self._call_soon(self._publish)
            return
        self._gathered = False
        entries, self._entries = self._entries, []
        if self._grouping:
            self._grouping = len(entries) > 1
        hub = self._state.hub
        try:
            ids = hub.publish_drafts_now([draft for _, _, draft in entries])
        except StoreUnavailable:  # the group would pass --max-topics: each is judged alone
            self._each_alone(entries)
            return
        if ids is None:  # the store needs I/O: one write for the group, in one task
            if len(entries) == 1:
                self._each_alone(entries)
            else:
                write = asyncio.ensure_future(self._publish_later(entries))
                hub.let_ready_run_first()
                self._writes.add(write)  # held until done: the loop keeps only weak references
                write.add_done_callback(self._writes.discard)
        elif hub.publishers_wait():
            hub.hold_publisher(partial(self._answer, entries, ids))
        else:
            self._answer(entries, ids)

    async def _publish_later(self, entries: list[tuple[HttpProtocol, bool, Draft]]) -> None:
        """The group's publishes in one store write (one Redis script, one SQLite transaction).
        If the store refuses the write, nothing of it was stored: each publish is then tried
        alone, so that only the publishes the store refuses fail."""
        hub = self._state.hub
        try:
            ids = await hub.publish_drafts([draft for _, _, draft in entries])
        except Exception:
            self._each_alone(entries)
            return
        if hub.publishers_wait():
            hub.hold_publisher(partial(self._answer, entries, ids))
        else:
            self._answer(entries, ids)

    @staticmethod
    def _each_alone(entries: list[tuple[HttpProtocol, bool, Draft]]) -> None:
        for connection, keep_alive, draft in entries:
            connection.publish_alone(keep_alive, draft)

    def _answer(self, entries: list[tuple[HttpProtocol, bool, Draft]], ids: list[str]) -> None:
        deadline = self._state.now() + self._state.config.idle_timeout
        for (connection, keep_alive, _), event_id in zip(entries, ids, strict=True):
            connection.answer_publish(keep_alive, event_id, deadline)
