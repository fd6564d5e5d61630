"""What only the native server (`ssehub serve`) does, as a real process over real HTTP on
loopback: keep-alive and pipelining, the C publish fast path, publisher pacing on raw sockets,
connection and header limits, malformed HTTP, shutdown. The HTTP API itself, the same through
every entry point, is in test_http_api.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from support.hub_http import metric, open_position, publish, stream
from support.hub_process import HubProcess

from ssehub._fanout import RUN_AHEAD, SLICE_SIZE
from ssehub.wire import Decoder

pytestmark = pytest.mark.anyio


def test_keep_alive_and_pipelined_publishes_are_answered_in_order(hub_url: str) -> None:
    host, port = hub_url.removeprefix("http://").split(":")
    body = b"topic=t&data=x"
    request = b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (
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
    head = f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
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
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
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
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
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


# -- resume -------------------------------------------------------------------------------------


# -- bad input ----------------------------------------------------------------------------------


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


def test_max_connections_keeps_a_reserve_for_health_checks(
    start_hub: Callable[..., HubProcess],
) -> None:
    url = start_hub("--max-connections", "2").url
    with stream(url, "t") as one, stream(url, "t") as two:
        open_position(one)
        open_position(two)
        # Past the limit, a connection from the reserve answers the load balancer's checks...
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 200
        # ...and nothing else.
        refused = httpx.post(f"{url}/publish", data={"topic": "t", "data": "x"})
        assert refused.status_code == 503 and "too many connections" in refused.json()["error"]
        with contextlib.ExitStack() as held:
            for _ in range(16):  # the whole reserve, held open
                sock = held.enter_context(socket.create_connection(_address(url)))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            full = httpx.get(f"{url}/healthz")
            assert full.status_code == 503 and "too many connections" in full.json()["error"]
    _until_served(url)


def _until_served(url: str) -> None:
    """Closed connections give their slots back as the hub notices them: wait for that."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the slots were never given back"


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_one_address_cannot_take_every_connection(start_hub: Callable[..., HubProcess]) -> None:
    # 127.0.0.1 is a trusted proxy by default (exempt); naming another makes it an ordinary peer.
    url = start_hub("--max-client-connections", "3", "--trusted-proxy", "192.0.2.1").url
    with contextlib.ExitStack() as held:
        for _ in range(3):
            sock = held.enter_context(socket.create_connection(_address(url)))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        refused = httpx.get(f"{url}/healthz")
        assert refused.status_code == 503
        assert "--max-client-connections" in refused.json()["error"]
    _until_served(url)


# -- stress -------------------------------------------------------------------------------------


def _raw_subscriber(url: str, topic: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /events?topic={topic} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
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
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
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
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never end
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
