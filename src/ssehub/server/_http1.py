"""HTTP/1.1 bytes for the API's answers: status lines, heads, the stream head."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from ssehub.api import SSE_HEADERS, Response, ids_body

__all__ = ["JSON_200_HEAD", "id_reply", "response_head", "stream_head"]

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus
}

# The head of nearly every answer to a publisher, formatted once.
JSON_200_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

# Streams are close-delimited: the payload bytes go out untouched, with no chunk framing.
_STREAM_HEAD = "HTTP/1.1 200 OK\r\n" + "".join(
    f"{name}: {value}\r\n" for name, value in (*SSE_HEADERS, ("Connection", "close"))
)


def response_head(reply: Response, keep_alive: bool, extra: Sequence[tuple[str, str]]) -> bytes:
    """The status line and headers of `reply`, with `extra` headers (CORS) added."""
    plain = keep_alive and not extra and not reply.headers
    if plain and reply.status == 200 and reply.content_type == "application/json":
        return JSON_200_HEAD % len(reply.body)
    head = _STATUS_LINES[reply.status]
    if reply.content_type:
        head += f"Content-Type: {reply.content_type}\r\n"
    head += f"Content-Length: {len(reply.body)}\r\n"
    for name, value in (*reply.headers, *extra) if reply.headers or extra else ():
        head += f"{name}: {value}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1")


def stream_head(extra: Sequence[tuple[str, str]]) -> bytes:
    return (_STREAM_HEAD + "".join(f"{n}: {v}\r\n" for n, v in extra) + "\r\n").encode("latin-1")


_ID_BODY = b'{"ids": ["%s"]}'
_ID_REPLY = JSON_200_HEAD + _ID_BODY
_ID_BODY_LENGTH = len(_ID_BODY) - 2  # without the "%s"


def id_reply(event_id: str) -> bytes:
    """The whole answer to one plain publish on a keep-alive connection with no CORS, for the
    server's fast path: the same bytes as `response_head` and `ids_response([event_id])`."""
    if event_id.isdigit():  # the memory store's ids: formatted at once, nothing to escape
        return _ID_REPLY % (_ID_BODY_LENGTH + len(event_id), event_id.encode())
    body = ids_body([event_id])
    return JSON_200_HEAD % len(body) + body
