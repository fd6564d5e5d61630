"""Plain publishes read in one turn of the hub's event loop are published as a group
(`ssehub.server._protocol.PublishGroup`). Each publisher must still get its own answer, in order;
nothing may be lost, doubled or answered out of turn; and with a backend that needs I/O, one
publisher's failed write must not fail the others'. Real `ssehub serve` processes on loopback.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from support.hub_process import HubProcess
from test_server import _raw_request, open_position, stream

from ssehub.api import ids_response
from ssehub.server._http1 import id_reply, response_head

ROUND_TRIP_HUB = str(Path(__file__).parent / "support" / "round_trip_hub.py")
# SQLite: writes with a fixed cost, so a group waits one more poll for more publishes.
BACKENDS = ["memory", "round trip", "sqlite"]


def start(start_hub: Callable[..., HubProcess], backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return start_hub("--backend", f"sqlite:///{tmp_path / 'hub.db'}").url
    return (start_hub() if backend == "memory" else start_hub(script=ROUND_TRIP_HUB)).url


def plain_publish(topic: str, data: str, *, close: bool = False) -> bytes:
    return _raw_request("/publish", f"topic={topic}&data={data}".encode(), close=close)


@contextmanager
def connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    host, port = url.removeprefix("http://").split(":")
    with ExitStack() as stack:
        address = (host, int(port))
        yield [stack.enter_context(socket.create_connection(address)) for _ in range(count)]


def read_answers(sock: socket.socket, count: int) -> bytes:
    """Read until `count` whole JSON answers have arrived (or the hub closes the connection)."""
    answers = b""
    while answers.count(b"HTTP/1.1 ") < count or not answers.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answers += chunk
    return answers


def answered_ids(answers: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'"ids": \["(\d+)"\]', answers)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_publishers_writing_at_once_each_get_their_own_id_in_order(
    start_hub: Callable[..., HubProcess], backend: str, tmp_path: Path
) -> None:
    url = start(start_hub, backend, tmp_path)
    publishers, rounds, pipelined = 8, 4, 3
    id_of: dict[str, str] = {}
    with stream(url, "group") as s, connections(url, publishers) as socks:
        open_position(s)
        for round_ in range(rounds):
            # Every publisher writes before any answer is read, so the hub reads several in one
            # turn of its loop; each also pipelines a few, which must be answered in order.
            for n, sock in enumerate(socks):
                sock.sendall(
                    b"".join(plain_publish("group", f"{round_}.{n}.{k}") for k in range(pipelined))
                )
            for n, sock in enumerate(socks):
                answers = read_answers(sock, pipelined)
                assert re.findall(rb"HTTP/1.1 (\d+)", answers) == [b"200"] * pipelined, answers
                ids = answered_ids(answers)
                assert ids == sorted(ids, key=int), "one publisher's answers out of order"
                id_of.update({f"{round_}.{n}.{k}": ids[k] for k in range(pipelined)})
        events = s.take(publishers * rounds * pipelined)
    assert len(set(id_of.values())) == len(id_of), "an id was given twice"
    assert [e.id for e in events] == sorted(id_of.values(), key=int), "events not in id order"
    assert {e.data: e.id for e in events} == id_of, "an event's id is not the one its publisher got"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_publish_followed_by_garbage_is_answered_before_the_400(
    start_hub: Callable[..., HubProcess], backend: str, tmp_path: Path
) -> None:
    url = start(start_hub, backend, tmp_path)
    with stream(url, "garbage") as s, connections(url, 1) as [sock]:
        open_position(s)
        sock.sendall(plain_publish("garbage", "kept") + b"NOT HTTP AT ALL\r\n\r\n")
        answers = read_answers(sock, 2)
        assert sock.recv(65536) == b"", "the hub should close after the 400"
        assert re.findall(rb"HTTP/1.1 (\d+)", answers) == [b"200", b"400"], answers
        assert b"malformed HTTP request" in answers
        httpx.post(f"{url}/publish", data={"topic": "garbage", "data": "after"})
        events = s.take(2)
    assert [(e.id, e.data) for e in events[:1]] == [(answered_ids(answers)[0], "kept")]
    assert events[1].data == "after", "the publish before the garbage was published twice"


@pytest.mark.parametrize("backend", BACKENDS)
def test_connection_close_in_a_group_is_answered_and_closed_alone(
    start_hub: Callable[..., HubProcess], backend: str, tmp_path: Path
) -> None:
    url = start(start_hub, backend, tmp_path)
    with stream(url, "close") as s, connections(url, 3) as socks:
        open_position(s)
        closing, *staying = socks
        closing.sendall(plain_publish("close", "last", close=True) + plain_publish("close", "x"))
        for n, sock in enumerate(staying):
            sock.sendall(plain_publish("close", f"stay{n}"))
        answers = read_answers(closing, 1)
        assert closing.recv(65536) == b"", "the hub should close after Connection: close"
        assert answers.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in answers
        for n, sock in enumerate(staying):
            assert b"HTTP/1.1 200" in read_answers(sock, 1)
            sock.sendall(plain_publish("close", f"again{n}"))  # still open
            assert b"HTTP/1.1 200" in read_answers(sock, 1)
        data = {e.data for e in s.take(5)}
    assert data == {"last", "stay0", "stay1", "again0", "again1"}


def test_a_refused_write_fails_only_its_own_publisher(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    url = start(start_hub, "round trip", tmp_path)  # the backend refuses writes to topic "refused"
    with stream(url, "fine") as s, connections(url, 4) as socks:
        open_position(s)
        refused, *fine = socks
        refused.sendall(plain_publish("refused", "no"))
        for n, sock in enumerate(fine):
            sock.sendall(plain_publish("fine", str(n)))
        answer = read_answers(refused, 1)
        assert answer.startswith(b"HTTP/1.1 500") and b'"error": "internal error"' in answer
        ids = [answered_ids(read_answers(sock, 1)) for sock in fine]
        events = s.take(3)
        assert [[e.id] for e in events] == sorted(ids, key=lambda i: int(i[0]))
        refused.sendall(plain_publish("fine", "3"))  # the refused publisher's connection goes on
        assert b"HTTP/1.1 200" in read_answers(refused, 1)
        assert s.next().data == "3"


@pytest.mark.parametrize("event_id", ["1", "1763764279000001", "18446744073709551615"])
def test_the_grouped_answer_is_the_general_paths_answer_byte_for_byte(event_id: str) -> None:
    reply = ids_response([event_id])
    assert id_reply(event_id) == response_head(reply, True, ()) + reply.body
