"""A client that resumes through a large backlog over a slow link gets all of it, in one
connection: the replay is written as the client reads it, and it is not counted as slow while
it catches up. A client that stops reading is still cut. Both entry points."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub.wire import Decoder, Event

EVENTS = 2000
DATA = "x" * 5000  # 2000 events of 5 KB: a 10 MB backlog


def publish_backlog(url: str) -> str:
    """Publish the backlog in batches; the id just before it."""
    start = httpx.post(f"{url}/publish", data={"topic": "t", "data": "start"}).json()["ids"][0]
    for first in range(0, EVENTS, 100):
        batch = [{"topic": "t", "data": f"{n}:{DATA}"} for n in range(first, first + 100)]
        assert httpx.post(f"{url}/publish", json=batch, timeout=30).status_code == 200
    return str(start)


def open_resume(url: str, last_event_id: str, receive_buffer: int) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # a narrow link
    sock.settimeout(30)
    sock.connect((host, int(port)))
    sock.sendall(
        b"GET /events?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: %s\r\n\r\n"
        % last_event_id.encode()
    )
    return sock


def read_events(sock: socket.socket, count: int) -> tuple[list[Event], bool]:
    """Read, 4 KiB at a time, until `count` events or the end; (events, ended)."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    decoder = Decoder()
    events = decoder.feed(head.partition(b"\r\n\r\n")[2])
    while len(events) < count:
        chunk = sock.recv(4096)
        if not chunk:
            return events, True
        events += decoder.feed(chunk)
    return events, False


@pytest.fixture
def start(start_api: Callable[..., str]) -> Callable[..., str]:
    def hub(*args: str) -> str:
        return start_api("--history", "5000", "--max-buffer-bytes", "262144", *args)

    return hub


def test_a_reader_catches_up_through_a_10_mb_backlog_in_one_connection(
    start: Callable[..., str],
) -> None:
    url = start()
    before = publish_backlog(url)
    with open_resume(url, before, receive_buffer=16 * 1024) as sock:
        events, ended = read_events(sock, EVENTS)
        assert not ended, f"cut after {len(events)} of {EVENTS} events"
        # Live events still arrive once the backlog is through.
        httpx.post(f"{url}/publish", data={"topic": "t", "data": "live"})
        [live], _ = read_events_more(sock, events)
    assert [event.data.partition(":")[0] for event in events] == [str(n) for n in range(EVENTS)]
    assert all(event.event == "message" for event in events)
    assert live.data == "live"


def read_events_more(sock: socket.socket, seen: list[Event]) -> tuple[list[Event], bool]:
    decoder = Decoder()
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return [], True
        got = [event for event in decoder.feed(chunk) if event.data == "live"]
        if got:
            return got, False


def test_a_client_that_stops_reading_while_catching_up_is_cut(
    start_hub: Callable[..., HubProcess],
) -> None:
    url = start_hub("--history", "5000", "--max-buffer-bytes", "262144", "--idle-timeout", "1").url
    before = publish_backlog(url)
    with open_resume(url, before, receive_buffer=16 * 1024) as sock:
        # Read nothing: the hub waits for the client for --idle-timeout, then cuts it.
        sock.settimeout(60)
        events, ended = _read_after_cut(sock)
    assert ended and len(events) < EVENTS
    assert httpx.get(f"{url}/healthz").status_code == 200


def _read_after_cut(sock: socket.socket) -> tuple[list[Event], bool]:
    """Wait until the hub has given up on the reader (it sends nothing more), then read what
    it had sent."""
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The hub's side closes once it gives up; until then the socket stays open and
        # unread. Peek without reading: a reset or EOF shows up after the buffered data.
        time.sleep(0.5)  # waiting for the hub's own timer (--idle-timeout)
        if _closed_by_peer(sock):
            break
    events: list[Event] = []
    decoder = Decoder()
    try:
        while chunk := sock.recv(65536):
            events += decoder.feed(chunk)
    except ConnectionResetError:
        pass
    return events, True


def _closed_by_peer(sock: socket.socket) -> bool:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    state = struct.unpack("B", info[:1])[0]
    return state in (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT: the hub's end is gone
