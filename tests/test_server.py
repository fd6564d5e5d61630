"""`ssehub serve` as a real process, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub._fanout import RUN_AHEAD, SLICE_SIZE
from ssehub.wire import Decoder, Event

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- helpers ------------------------------------------------------------------------------------


def publish(url: str, **fields: object) -> httpx.Response:
    return httpx.post(f"{url}/publish", json=fields)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^ssehub_{name} (\S+)$", text, re.MULTILINE)
    assert match, f"no metric {name} in:\n{text}"
    return float(match.group(1))


class Stream:
    """An open /events response and a decoder over it."""

    def __init__(self, response: httpx.Response, decoder: Decoder) -> None:
        self.response = response
        self.decoder = decoder
        self._chunks = response.iter_raw()
        self._ready: list[Event] = []

    def next(self) -> Event:
        while not self._ready:
            self._ready.extend(self.decoder.feed(next(self._chunks)))
        return self._ready.pop(0)

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]


@contextmanager
def stream(url: str, *topics: str, last_event_id: str | None = None) -> Iterator[Stream]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    params = [("topic", topic) for topic in topics]
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{url}/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        yield Stream(response, Decoder(last_event_id or ""))


def open_position(s: Stream) -> str:
    """Read the stream's opening until the hub has told us where it stands."""
    while s.decoder.last_event_id == "":
        assert s.decoder.feed(next(s._chunks)) == []
    return s.decoder.last_event_id


# -- the contract -------------------------------------------------------------------------------


def test_event_stream_headers_and_opening(hub_url: str) -> None:
    with httpx.stream("GET", f"{hub_url}/events?topic=t") as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        opening = next(response.iter_raw())
    assert opening.startswith(b": ssehub\nretry: 3000\n\n")


def test_publish_reaches_subscribers_with_id_and_type(hub_url: str) -> None:
    with stream(hub_url, "orders") as s:
        open_position(s)
        reply = publish(hub_url, topic="orders", data={"n": 1}, event="created")
        assert reply.status_code == 200
        [event_id] = reply.json()["ids"]
        event = s.next()
    assert (event.event, event.data, event.id) == ("created", '{"n":1}', event_id)


def test_form_publish_like_curl(hub_url: str) -> None:
    with stream(hub_url, "orders") as s:
        open_position(s)
        reply = httpx.post(f"{hub_url}/publish", data={"topic": "orders", "data": "hello"})
        assert reply.status_code == 200, reply.text
        assert s.next().data == "hello"


def test_many_topics_on_one_connection(hub_url: str) -> None:
    with stream(hub_url, "a", "b") as s:
        open_position(s)
        publish(hub_url, topic="a", data="1")
        publish(hub_url, topic="c", data="not mine")
        publish(hub_url, topic=["a", "b"], data="2: once")
        publish(hub_url, topic="b", data="3")
        assert [e.data for e in s.take(3)] == ["1", "2: once", "3"]


def test_batch_publish_returns_ids_in_order(hub_url: str) -> None:
    with stream(hub_url, "t") as s:
        open_position(s)
        items = [{"topic": "t", "data": str(i)} for i in range(5)]
        ids = httpx.post(f"{hub_url}/publish", json=items).json()["ids"]
        events = s.take(5)
    assert [e.data for e in events] == ["0", "1", "2", "3", "4"]
    assert [e.id for e in events] == ids


def test_keep_alive_and_pipelined_publishes_are_answered_in_order(hub_url: str) -> None:
    host, port = hub_url.removeprefix("http://").split(":")
    body = b"topic=t&data=x"
    request = b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request * 5)
        received = b""
        while received.count(b'{"ids"') < 5:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    ids = [int(i) for i in re.findall(rb'"ids": \["(\d+)"\]', received)]
    assert ids == sorted(ids) and len(ids) == 5


def _raw_request(target: str, body: bytes, content_type: str = "", *, close: bool = False) -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + body


@pytest.mark.parametrize("sending", ["one by one", "pipelined", "in 7-byte pieces"])
def test_plain_form_and_general_publishes_mix_on_one_connection_in_order(
    hub_url: str, sending: str
) -> None:
    # Plain form publishes take the C fast path when they arrive whole; JSON, lists of topics,
    # invalid values, other routes and requests cut in pieces take the general one. Either way
    # they must be answered in order and published the same way.
    form = "application/x-www-form-urlencoded"
    requests = [
        _raw_request("/publish", b"topic=mix&data=one%0Atwo&event=up", form),
        _raw_request(
            "/publish", b'{"topic": "mix", "data": "one\\ntwo", "event": "up"}', "application/json"
        ),
        _raw_request("/publish", b"topic=mix&data=3&retry=50"),
        _raw_request("/publish", b"topic=mix&event=a%0Ab", form),  # refused: line break
        _raw_request("/publish", b"topic=mix&topic=other&data=4", form),
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
        _raw_request("/publish", b"topic=mix&data=5", form),
    ]
    host, port = hub_url.removeprefix("http://").split(":")
    answers = b""
    with stream(hub_url, "mix") as s, socket.create_connection((host, int(port))) as sock:
        open_position(s)

        def read_answers(count: int) -> None:
            nonlocal answers
            while answers.count(b"HTTP/1.1 ") < count or not answers.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, answers
                answers += chunk

        payload = b"".join(requests)
        if sending == "one by one":
            for n, request in enumerate(requests, 1):
                sock.sendall(request)
                read_answers(n)
        elif sending == "pipelined":
            sock.sendall(payload)
        else:
            for start in range(0, len(payload), 7):
                sock.sendall(payload[start : start + 7])
        read_answers(len(requests))
        events = s.take(5)
    statuses = re.findall(rb"HTTP/1.1 (\d+)", answers)
    assert statuses == [b"200", b"200", b"200", b"400", b"200", b"200", b"200"]
    assert b"line break" in answers
    ids = [m.decode() for m in re.findall(rb'"ids": \["(\d+)"\]', answers)]
    assert [e.id for e in events] == ids
    assert [(e.event, e.data) for e in events] == [
        ("up", "one\ntwo"),
        ("up", "one\ntwo"),
        ("message", "3"),
        ("message", "4"),
        ("message", "5"),
    ]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_nothing_sent_after_connection_close_is_served(hub_url: str, content_type: str) -> None:
    def body(data: str) -> bytes:
        if content_type == "application/json":
            return json.dumps({"topic": "closing", "data": data}).encode()
        return f"topic=closing&data={data}".encode()

    last = _raw_request("/publish", body("first"), content_type, close=True)
    host, port = hub_url.removeprefix("http://").split(":")
    with stream(hub_url, "closing") as s, socket.create_connection((host, int(port))) as sock:
        open_position(s)
        sock.sendall(last + _raw_request("/publish", body("second"), content_type))
        answers = b""
        while chunk := sock.recv(65536):  # the hub closes the connection after one answer
            answers += chunk
        assert answers.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in answers
        publish(hub_url, topic="closing", data="after")
        assert [e.data for e in s.take(2)] == ["first", "after"]


def test_a_publisher_is_held_until_all_but_a_couple_of_its_events_are_delivered(
    hub_url: str,
) -> None:
    # Enough subscribers that a sweep takes more than one turn of the loop (see FanOut.pace);
    # the last one is served last.
    others = [_raw_subscriber(hub_url, "paced") for _ in range(SLICE_SIZE)]
    subscriber = _raw_subscriber(hub_url, "paced")
    host, port = hub_url.removeprefix("http://").split(":")
    requests = b"".join(
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in (b"topic=paced&data=%d" % n for n in range(10))
    )
    with contextlib.ExitStack() as stack:
        for sock in others:
            stack.enter_context(sock)
        stack.enter_context(subscriber)
        publisher = stack.enter_context(socket.create_connection((host, int(port))))
        publisher.sendall(requests)  # pipelined: the hub sees all ten at once
        answers = b""
        while answers.count(b'{"ids"') < 10:
            chunk = publisher.recv(65536)
            assert chunk, answers
            answers += chunk
        # The last answer was sent after what it waited for was written to the subscriber's
        # socket, and loopback delivers in order: those events are readable now, no waiting.
        subscriber.setblocking(False)
        delivered = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := subscriber.recv(65536):
                delivered += chunk
    assert delivered.count(b"\ndata: ") >= 10 - RUN_AHEAD


def test_healthz_and_metrics(hub_url: str) -> None:
    assert httpx.get(f"{hub_url}/healthz").json() == {"status": "ok"}
    publish(hub_url, topic="t", data="x")
    assert metric(hub_url, "events_published_total") == 1
    assert 'ssehub_history_events{topic="t"} 1' in httpx.get(f"{hub_url}/metrics").text


def test_heartbeats_keep_the_stream_alive(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--heartbeat", "0.05").url
    with httpx.stream("GET", f"{url}/events?topic=t") as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if b": heartbeat\n\n" in seen:
                break
    assert b": heartbeat\n\n" in seen


# -- resume -------------------------------------------------------------------------------------


async def test_resume_has_no_gap_and_no_duplicate_while_publishing_continues(
    hub_url: str,
) -> None:
    total = 400
    rng = random.Random(7)
    received: list[str] = []
    last_id: str | None = None
    async with httpx.AsyncClient(base_url=hub_url, timeout=10) as client:

        async def publisher() -> None:
            for i in range(total):
                reply = await client.post("/publish", json={"topic": "t", "data": str(i)})
                assert reply.status_code == 200

        publishing = asyncio.ensure_future(publisher())
        reconnects = 0
        while len(received) < total:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            decoder = Decoder(last_id or "")
            budget = rng.randint(1, 25)  # drop the connection after this many events
            async with client.stream("GET", "/events?topic=t", headers=headers) as response:
                async for chunk in response.aiter_raw():
                    for event in decoder.feed(chunk):
                        assert event.event != "reset", event.data
                        received.append(event.data)
                        budget -= 1
                    last_id = decoder.last_event_id
                    if budget <= 0 or len(received) == total:
                        break
            reconnects += 1
        await publishing
    assert received == [str(i) for i in range(total)]
    assert reconnects > 10


def test_unknown_last_event_id_gets_a_reset_then_live_events(hub_url: str) -> None:
    publish(hub_url, topic="t", data="old")
    with stream(hub_url, "t", last_event_id="999999999999999999") as s:
        reset = s.next()
        publish(hub_url, topic="t", data="live")
        live = s.next()
    assert reset.event == "reset"
    assert json.loads(reset.data)["last_event_id"] == "999999999999999999"
    assert live.data == "live"
    assert metric(hub_url, "resets_total") == 1


def test_last_event_id_older_than_history_gets_a_reset(
    start_hub: Callable[..., HubProcess],
) -> None:
    url = start_hub("--history", "3").url
    first = publish(url, topic="t", data="0").json()["ids"][0]
    for i in range(1, 6):
        publish(url, topic="t", data=str(i))
    with stream(url, "t", last_event_id=first) as s:
        reset = s.next()
    assert reset.event == "reset"
    assert "no longer retained" in json.loads(reset.data)["reason"]


def test_last_event_id_query_parameter_for_polyfills(hub_url: str) -> None:
    ids = [publish(hub_url, topic="t", data=str(i)).json()["ids"][0] for i in range(3)]
    with httpx.stream("GET", f"{hub_url}/events?topic=t&last_event_id={ids[0]}") as response:
        decoder = Decoder()
        events: list[Event] = []
        for chunk in response.iter_raw():
            events += decoder.feed(chunk)
            if len(events) == 2:
                break
    assert [e.data for e in events] == ["1", "2"]


def test_reconnect_before_any_event_still_resumes(hub_url: str) -> None:
    with stream(hub_url, "t") as s:
        position = open_position(s)
    publish(hub_url, topic="t", data="while away")
    with stream(hub_url, "t", last_event_id=position) as s:
        assert s.next().data == "while away"


# -- bad input ----------------------------------------------------------------------------------

BAD_PUBLISHES: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("missing topic", {"content-type": "application/json"}, b'{"data": "x"}', 400, "topic"),
    ("malformed JSON", {"content-type": "application/json"}, b'{"topic": ', 400, "malformed JSON"),
    ("non-UTF-8", {"content-type": "application/json"}, b'{"topic": "\xff"}', 400, "UTF-8"),
    ("event injection LF", {}, b"topic=t&event=a%0Adata%3A+x", 400, "event"),
    ("event injection CR", {}, b"topic=t&event=a%0Ddata%3A+x", 400, "event"),
    ("topic with newline", {}, b"topic=t%0Aevent%3A+x&data=x", 400, "topic"),
    ("topic with space", {}, b"topic=a+b&data=x", 400, "topic"),
    ("negative retry", {}, b"topic=t&retry=-1", 400, "retry"),
    ("retry not a number", {}, b"topic=t&retry=1%0Adata%3A+x", 400, "retry"),
    (
        "id set by publisher",
        {"content-type": "application/json"},
        b'{"topic":"t","id":"1"}',
        400,
        "id",
    ),
    ("bad percent-encoding", {}, b"topic=t&data=%ff", 400, "form"),
    ("topic not a string", {"content-type": "application/json"}, b'{"topic": 5}', 400, "topic"),
    ("empty batch", {"content-type": "application/json"}, b"[]", 400, "non-empty"),
    ("unsupported type", {"content-type": "text/plain"}, b"hello", 415, "content type"),
    (
        "batch with one bad item",
        {"content-type": "application/json"},
        b'[{"topic":"t","data":"ok"},{"topic":"t","event":"a\\nb"}]',
        400,
        "item 1",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [case[1:] for case in BAD_PUBLISHES],
    ids=[case[0] for case in BAD_PUBLISHES],
)
def test_bad_publish_gets_a_json_error_and_publishes_nothing(
    hub_url: str, headers: dict[str, str], body: bytes, status: int, says: str
) -> None:
    reply = httpx.post(f"{hub_url}/publish", content=body, headers=headers)
    assert reply.status_code == status
    assert says in reply.json()["error"]
    assert metric(hub_url, "events_published_total") == 0
    assert publish(hub_url, topic="t", data="still serving").status_code == 200


def test_data_cannot_inject_fields(hub_url: str) -> None:
    hostile = "x\n\nevent: admin\ndata: pwned\rid: 1\r\n"
    with stream(hub_url, "t") as s:
        open_position(s)
        publish(hub_url, topic="t", data=hostile)
        publish(hub_url, topic="t", data="next")
        first, second = s.take(2)
    assert first.event == "message"
    assert first.data == "x\n\nevent: admin\ndata: pwned\nid: 1\n"
    assert second.data == "next"


def test_body_over_the_limit_is_refused(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--max-body-bytes", "1000").url
    reply = httpx.post(f"{url}/publish", data={"topic": "t", "data": "x" * 2000})
    assert reply.status_code == 413 and "limit" in reply.json()["error"]
    assert metric(url, "events_published_total") == 0


def test_headers_over_the_limit_are_refused(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--max-header-bytes", "2000").url
    reply = httpx.get(f"{url}/healthz", headers={"X-Big": "y" * 3000})
    assert reply.status_code == 431 and "limit" in reply.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_malformed_http_gets_400_and_the_hub_keeps_serving(hub_url: str) -> None:
    host, port = hub_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GARBAGE\x00 / NOT-HTTP\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b'"error": "malformed HTTP request' in reply
    assert httpx.get(f"{hub_url}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/events", 400),
        ("GET", "/events?topic=a%20b", 400),
        ("GET", "/nope", 404),
        ("PUT", "/publish", 405),
    ],
)
def test_bad_routes_get_json_errors(hub_url: str, method: str, path: str, status: int) -> None:
    reply = httpx.request(method, f"{hub_url}{path}")
    assert reply.status_code == status
    assert reply.json()["error"]


async def test_a_flood_of_bad_requests_does_not_stop_good_ones(hub_url: str) -> None:
    async with httpx.AsyncClient(base_url=hub_url, timeout=20) as client:

        async def bad(i: int) -> int:
            body = b"{" if i % 2 else b'{"topic": "t", "event": "a\\nb"}'
            headers = {"content-type": "application/json"}
            return (await client.post("/publish", content=body, headers=headers)).status_code

        async def good(i: int) -> int:
            return (await client.post("/publish", data={"topic": "t", "data": str(i)})).status_code

        results = await asyncio.gather(*(bad(i) for i in range(300)), *(good(i) for i in range(50)))
    assert results[:300] == [400] * 300
    assert results[300:] == [200] * 50
    assert metric(hub_url, "events_published_total") == 50


def test_cors(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--cors-origin", "https://app.example").url
    allowed = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    preflight = httpx.options(f"{url}/events", headers=allowed)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "Last-Event-ID" in preflight.headers["access-control-allow-headers"]
    denied = httpx.options(f"{url}/events", headers={**allowed, "Origin": "https://evil.example"})
    assert denied.status_code == 403 and "not allowed" in denied.json()["error"]
    with httpx.stream(
        "GET", f"{url}/events?topic=t", headers={"Origin": "https://app.example"}
    ) as r:
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    reply = httpx.get(f"{url}/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in reply.headers


def test_max_connections(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--max-connections", "2").url
    with stream(url, "t") as one, stream(url, "t") as two:
        open_position(one)
        open_position(two)
        reply = httpx.get(f"{url}/healthz")
        assert reply.status_code == 503 and "too many connections" in reply.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200


# -- stress -------------------------------------------------------------------------------------


def _raw_subscriber(url: str, topic: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /events?topic={topic} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    head = b""
    while b"id: " not in head:  # registered once the position arrives
        head += sock.recv(4096)
    return sock


@asynccontextmanager
async def _fast_reader(url: str, topic: str, count: int) -> AsyncIterator[asyncio.Future[int]]:
    """Reads `topic` as fast as it can; the future gives how many events arrived."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{url}/events?topic={topic}") as response,
    ):
        decoder = Decoder()
        chunks = response.aiter_raw()
        while not decoder.last_event_id:
            decoder.feed(await anext(chunks))

        async def read() -> int:
            seen = 0
            async for chunk in chunks:
                seen += len(decoder.feed(chunk))
                if seen >= count:
                    break
            return seen

        task = asyncio.ensure_future(read())
        yield task
        task.cancel()


async def test_slow_consumer_is_dropped_while_others_get_everything(
    start_hub: Callable[..., HubProcess],
) -> None:
    url = start_hub("--max-buffer-bytes", "65536").url
    frozen = _raw_subscriber(url, "t", rcvbuf=4096)  # never reads again
    events, size = 300, 64 * 1024
    async with _fast_reader(url, "t", events) as fast, httpx.AsyncClient(timeout=30) as client:
        for i in range(events):
            reply = await client.post(
                f"{url}/publish", data={"topic": "t", "data": f"{i:06d}" * (size // 6)}
            )
            assert reply.status_code == 200
        assert await fast == events
    assert metric(url, "slow_consumers_dropped_total") == 1
    # The frozen peer was cut off: reading what it has left ends well before all was sent.
    frozen.settimeout(10)
    got = 0
    try:
        while chunk := frozen.recv(1 << 20):
            got += len(chunk)
    except ConnectionResetError:
        pass
    frozen.close()
    assert got < events * size


def test_sigterm_ends_streams_and_exits_promptly(start_hub: Callable[..., HubProcess]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    hub = start_hub()
    sockets = [_raw_subscriber(hub.url, "t") for _ in range(1000)]
    try:
        assert hub.terminate(timeout=10) == 0
        for sock in sockets:  # every stream ended, so every client would reconnect
            sock.settimeout(5)
            while sock.recv(65536):
                pass
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_expect_100_continue_is_answered(hub_url: str) -> None:
    host, port = hub_url.removeprefix("http://").split(":")
    body = b"topic=t&data=" + b"x" * 2000
    head = (
        b"POST /publish HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body is sent
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_a_connection_that_never_finishes_its_request_is_closed(
    start_hub: Callable[..., HubProcess],
) -> None:
    hub = start_hub("--idle-timeout", "0.2", "--heartbeat", "0.5")
    host, port = hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: h\r\n")  # headers never end
        sock.settimeout(30)
        assert sock.recv(1024) == b""  # the hub hung up
    with httpx.stream("GET", f"{hub.url}/events?topic=t") as response:
        seen = b""
        chunks = response.iter_raw()
        while b": heartbeat" not in seen:  # the first heartbeat comes after the idle timeout
            seen += next(chunks)
        publish(hub.url, topic="t", data="later")  # so the stream outlived it
        decoder = Decoder()
        while not (events := decoder.feed(next(chunks))):
            pass
        assert events[0].data == "later"


@pytest.mark.parametrize(("command", "args"), [("demo", ()), ("serve", ("--demo",))])
def test_ssehub_demo_is_serve_with_the_demos(
    start_hub: Callable[..., HubProcess], command: str, args: tuple[str, ...]
) -> None:
    hub = start_hub(*args, command=command)
    note = {"title": "deploy finished", "body": "v2 is live"}
    with httpx.stream("GET", f"{hub.url}/events", params={"topic": "notifications"}) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": ssehub"  # the stream is open before publishing
        answer = httpx.post(f"{hub.url}/demo/notify", json=note)
        assert answer.status_code == 200, answer.text
        for line in lines:
            if line.startswith("data: "):
                assert json.loads(line[6:])["title"] == "deploy finished"
                break


def test_plain_serve_has_no_demo_routes(hub_url: str) -> None:
    answer = httpx.post(f"{hub_url}/demo/notify", json={"title": "x"})
    assert answer.status_code == 404
    assert "no route" in answer.json()["error"]


@pytest.mark.parametrize("interval", ["0", "0.05"])
def test_write_interval_keeps_every_event_in_order(
    start_hub: Callable[..., HubProcess], interval: str
) -> None:
    hub = start_hub("--write-interval", interval)
    decoder = Decoder()
    with httpx.stream("GET", f"{hub.url}/events", params={"topic": "t"}) as stream:
        chunks = stream.iter_raw()
        decoder.feed(next(chunks))  # the hub registers a stream as it sends its first bytes
        with httpx.Client() as publisher:
            for n in range(20):
                publisher.post(f"{hub.url}/publish", data={"topic": "t", "data": str(n)})
        got: list[str] = []
        while len(got) < 20:
            got += [e.data for e in decoder.feed(next(chunks)) if e.event == "message"]
    assert got == [str(n) for n in range(20)]


@pytest.mark.parametrize(
    "args", [("--write-interval", "-0.001"), ("--history", "-1"), ("--history-ttl", "-5")]
)
def test_negative_sizes_and_times_are_refused_before_serving(args: tuple[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ssehub", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert f"argument {args[0]}: must be >= 0, not {args[1]}" in run.stderr
