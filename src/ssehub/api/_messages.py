"""Requests and answers as plain values, whatever shell carried them in.

The native server builds a `Request` from httptools' callbacks, the ASGI app from a scope; both
turn a `Response` or a `StreamReply` back into their own wire form.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ssehub.model import Audience

__all__ = [
    "SSE_HEADERS",
    "HTTPError",
    "Handler",
    "Reply",
    "Request",
    "Response",
    "StreamReply",
    "error_response",
    "json_response",
]

# What every event stream is sent with: no caching, no proxy buffering (nginx honours
# X-Accel-Buffering). Framing is the shell's: the native server adds `Connection: close`.
SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)


@dataclass(slots=True)
class Request:
    """One HTTP request: header names lower-case, repeated headers joined with ", ".

    `client` is the peer's address as the shell knows it ("" when it knows none). Query values
    that are not UTF-8 keep their bytes as lone surrogates (`surrogateescape`): no valid topic
    or id contains one, so they are refused rather than silently replaced.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    client: str = ""
    http_version: str = "1.1"

    @classmethod
    def parse_target(
        cls, method: str, target: str, headers: dict[str, str], client: str = ""
    ) -> Request:
        path, _, query_string = target.partition("?")
        query = (
            parse_qs(query_string, keep_blank_values=True, errors="surrogateescape")
            if query_string
            else {}
        )
        return cls(method, path, query, headers, b"", client)

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = ()
    # Sent when the hub lets the publisher go on (Hub.hold_publisher), not at once.
    paced: bool = False


@dataclass(slots=True)
class StreamReply:
    """A handler's answer meaning: make this request an event stream of these topics.

    `audience`: who the subscriber is as far as private events go (None: public events only).
    `expires`: when the stream must end (its token's expiry, seconds since the epoch), or None.
    `on_close`: called once when the stream ends, however it ends (Mercure's presence).
    """

    topics: tuple[str, ...]
    last_event_id: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    audience: Audience | None = None
    expires: float | None = None
    on_close: Callable[[], None] | None = None


Reply = Response | StreamReply
Handler = Callable[[Request], Reply | Awaitable[Reply]]


class HTTPError(Exception):
    """A request we refuse; becomes a JSON error response `{"error": message, **detail}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        **detail: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.detail = detail

    def response(self) -> Response:
        reply = error_response(self.status, str(self), **self.detail)
        reply.headers = self.headers
        return reply


def json_response(payload: object, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode())


def error_response(status: int, message: str, **detail: object) -> Response:
    return json_response({"error": message, **detail}, status)
