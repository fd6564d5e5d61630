"""Every bad request gets its 4xx, and the hub keeps serving: the probes of an attacker and an
operator, each a regression test, on both entry points (`ssehub serve` and `hub.asgi_app()`).

Each case was answered by a dropped connection (or a 500, or a stream that closed at once)
before: huge numbers, JSON nested deep, lone surrogates, NaN, encoded bodies, a missing Host,
HEAD, Unicode separators in topics, bytes that are not UTF-8 in a query.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest
from support.hub_http import Stream, metric, open_position, publish, stream

from ssehub.wire import Decoder

JSON = {"content-type": "application/json"}


@pytest.fixture
def hub_url(start_api: Callable[..., str]) -> str:
    return start_api()


HUGE = "9" * 5000

BAD_PUBLISHES: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("5000-digit retry, form", {}, f"topic=t&retry={HUGE}".encode(), 400, "retry"),
    ("5000-digit retry, JSON", JSON, f'{{"topic": "t", "retry": {HUGE}}}'.encode(), 400, "JSON"),
    ("5000-digit data", JSON, f'{{"topic": "t", "data": {HUGE}}}'.encode(), 400, "JSON"),
    ("retry over 2^31-1", {}, b"topic=t&retry=2147483648", 400, "retry"),
    ("JSON nested 50k deep", JSON, b'{"topic": "t", "data": ' + b"[" * 50_000, 400, "JSON"),
    ("JSON nested deep, closed", JSON, b"[" * 5000 + b"]" * 5000, 400, "JSON"),
    ("lone surrogate topic", JSON, b'{"topic": "\\ud800"}', 400, "topic"),
    ("NaN", JSON, b'{"topic": "t", "data": NaN}', 400, "NaN"),
    ("Infinity", JSON, b'{"topic": "t", "data": -Infinity}', 400, "Infinity"),
    ("gzip body", {"content-encoding": "gzip"}, b"topic=t&data=x", 415, "Content-Encoding"),
    ("line separator topic", {}, b"topic=a%E2%80%A8b&data=x", 400, "topic"),
    ("NEL topic", {}, b"topic=a%C2%85b&data=x", 400, "topic"),
    ("zero-width space topic", {}, b"topic=a%E2%80%8Bb&data=x", 400, "topic"),
    ("no-break space topic", {}, b"topic=a%C2%A0b&data=x", 400, "topic"),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [case[1:] for case in BAD_PUBLISHES],
    ids=[case[0] for case in BAD_PUBLISHES],
)
def test_bad_publishes_get_their_4xx_and_nothing_is_published(
    hub_url: str, headers: dict[str, str], body: bytes, status: int, says: str
) -> None:
    reply = httpx.post(f"{hub_url}/publish", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]
    assert metric(hub_url, "events_published_total") == 0
    assert publish(hub_url, topic="t", data="still serving").status_code == 200


@pytest.mark.parametrize(
    "query",
    ["topic=a%E2%80%A8b", "topic=a%C2%85b", "topic=%ff", "topic=a%ED%A0%80b", "topic=a%E2%80%8Bb"],
)
def test_events_apply_the_same_topic_rule(hub_url: str, query: str) -> None:
    reply = httpx.get(f"{hub_url}/events?{query}")
    assert reply.status_code == 400 and "topic" in reply.json()["error"]


def test_a_unicode_topic_of_printable_characters_is_fine(hub_url: str) -> None:
    with stream(hub_url, "café.日本") as s:
        open_position(s)
        assert publish(hub_url, topic="café.日本", data="x").status_code == 200
        assert s.next().data == "x"


@pytest.mark.parametrize(
    "last_event_id", [HUGE, "not-an-id", "-1", "1e9", "\u00e9", "1" * 300], ids=str.__len__
)
def test_any_malformed_last_event_id_gets_a_reset_and_then_live_events(
    hub_url: str, last_event_id: str
) -> None:
    headers = {"Last-Event-ID": last_event_id.encode()}  # UTF-8 bytes, as a browser sends them
    with httpx.stream("GET", f"{hub_url}/events?topic=t", headers=headers) as response:
        assert response.status_code == 200
        s = Stream(response, Decoder())
        reset = s.next()
        publish(hub_url, topic="t", data="live")
        live = s.next()
    assert reset.event == "reset" and "reason" in json.loads(reset.data)
    assert live.data == "live"


def test_a_malformed_last_event_id_in_the_query_gets_a_reset(hub_url: str) -> None:
    with httpx.stream("GET", f"{hub_url}/events?topic=t&last_event_id=%ff%fe") as response:
        chunks = response.iter_raw()
        seen = b""
        while b"event: reset" not in seen:
            seen += next(chunks)


def test_head_where_get_works(hub_url: str) -> None:
    events = httpx.head(f"{hub_url}/events?topic=t")
    assert events.status_code == 200 and events.content == b""
    assert events.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert httpx.head(f"{hub_url}/events").status_code == 400  # decided as GET decides
    health = httpx.head(f"{hub_url}/healthz")
    assert health.status_code == 200 and health.content == b""


def raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_http_1_1_without_host_gets_400(hub_url: str) -> None:
    reply = raw_exchange(hub_url, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"Host" in reply


def test_requests_pipelined_before_garbage_are_answered_first(
    start_hub: Callable[..., object],
) -> None:
    hub = start_hub()
    url: str = hub.url  # type: ignore[attr-defined]
    good = b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 14\r\n\r\ntopic=t&data=x"
    reply = raw_exchange(url, good + good + b"GARBAGE\x00 / NOT-HTTP\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert reply.rstrip().endswith(b"}") and b"HTTP/1.1 400 " in reply
    assert reply.index(b"HTTP/1.1 400 ") > reply.rindex(b"HTTP/1.1 200 OK")
    assert metric(url, "events_published_total") == 2
