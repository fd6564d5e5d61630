"""HTTP/1.1 messages as plain data: the parsed request and the bytes of a response."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

__all__ = [
    "JSON_200_HEAD",
    "SSE_HEADERS",
    "HTTPError",
    "Request",
    "Response",
    "StreamReply",
    "error_response",
    "json_response",
]

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus
}

# What every event stream is sent with: no caching, no proxy buffering (nginx honours
# X-Accel-Buffering), and close-delimited framing so the payload bytes go out untouched.
SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
    ("Connection", "close"),
)


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    def parse_target(cls, method: str, target: str, headers: dict[str, str]) -> Request:
        path, _, query_string = target.partition("?")
        query = parse_qs(query_string, keep_blank_values=True) if query_string else {}
        return cls(method, target, path, query, headers)

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


# The head of nearly every answer to a publisher, formatted once.
JSON_200_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = ()
    # Sent when the hub lets the publisher go on (Hub.hold_publisher), not at once.
    paced: bool = False

    def head(self, keep_alive: bool, extra: Sequence[tuple[str, str]]) -> bytes:
        plain = keep_alive and not extra and not self.headers
        if plain and self.status == 200 and self.content_type == "application/json":
            return JSON_200_HEAD % len(self.body)
        head = _STATUS_LINES[self.status]
        if self.content_type:
            head += f"Content-Type: {self.content_type}\r\n"
        head += f"Content-Length: {len(self.body)}\r\n"
        for name, value in (*self.headers, *extra) if self.headers or extra else ():
            head += f"{name}: {value}\r\n"
        if not keep_alive:
            head += "Connection: close\r\n"
        return (head + "\r\n").encode("latin-1")


@dataclass(slots=True)
class StreamReply:
    """A handler's answer meaning: make this connection an event stream of these topics."""

    topics: tuple[str, ...]
    last_event_id: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)


class HTTPError(Exception):
    """A request we refuse; becomes a JSON error response."""

    def __init__(self, status: int, message: str, **detail: object) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail

    def response(self) -> Response:
        return error_response(self.status, str(self), **self.detail)


def json_response(payload: object, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode())


def error_response(status: int, message: str, **detail: object) -> Response:
    return json_response({"error": message, **detail}, status)


def stream_head(extra: list[tuple[str, str]]) -> bytes:
    lines = ["HTTP/1.1 200 OK", *(f"{n}: {v}" for n, v in (*SSE_HEADERS, *extra))]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
