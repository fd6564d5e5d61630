"""`ssehub.asgi` in a FastAPI app served by real uvicorn over loopback HTTP (and in-process,
through `ssehub.testing`, where what the app sends is the point and not the wire)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from test_asgi_support import WAIT, Events, broken_off, events, http, serve_asgi

from ssehub.asgi import EventSourceResponse, last_event_id
from ssehub.hub import Hub
from ssehub.testing import assert_events, stream
from ssehub.wire import Event

T = TypeVar("T")


@dataclass
class Probe:
    """What the app under test saw, for the test thread to wait on."""

    closed: threading.Event = field(default_factory=threading.Event)
    responses: list[EventSourceResponse] = field(default_factory=list)

    def watch(self, items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T] | Iterator[T]:
        """`items`, noting when the response closes them (their `finally` runs)."""
        return self._watch_async(items) if isinstance(items, AsyncIterable) else self._watch(items)

    async def _watch_async(self, items: AsyncIterable[T]) -> AsyncIterator[T]:
        try:
            async for item in items:
                yield item
        finally:
            self.closed.set()

    def _watch(self, items: Iterable[T]) -> Iterator[T]:
        try:
            yield from items
        finally:
            self.closed.set()


class Reading(BaseModel):
    sensor: str
    value: float


def make_app(hub: Hub, probe: Probe) -> FastAPI:
    app = FastAPI()

    def respond(content: AsyncIterable[object] | Iterable[object], **options: Any) -> Any:
        response = EventSourceResponse(probe.watch(content), **options)
        probe.responses.append(response)
        return response

    @app.get("/kinds")
    async def kinds() -> EventSourceResponse:
        async def items() -> AsyncIterator[object]:
            yield "plain text"
            yield "two\nlines"
            yield {"n": 1, "text": "é"}
            yield [1, 2]
            yield Reading(sensor="t1", value=21.5)
            yield Event(data="custom", event="update", id="7", retry=2500)
            yield b"event: raw\ndata: pre-encoded\n\n"
            yield Event(data="bye", event="end")

        return respond(items(), retry=1500)

    @app.get("/sync")
    def sync_ticks(count: int = 3) -> EventSourceResponse:
        """`count` ticks, or endless ones for a negative count."""

        def ticks() -> Iterator[str]:
            for i in itertools.count() if count < 0 else range(count):
                time.sleep(0.001)  # a blocking source: it must not block the loop
                yield f"tick {i}"

        return respond(ticks())

    @app.get("/forever")
    async def forever() -> EventSourceResponse:
        async def one_then_nothing() -> AsyncIterator[str]:
            yield "first"
            await asyncio.Event().wait()

        return respond(one_then_nothing(), heartbeat=0.05)

    @app.get("/flood")
    async def flood() -> EventSourceResponse:
        async def big_events() -> AsyncIterator[str]:
            while True:
                yield "x" * 65536

        return respond(big_events(), send_timeout=0.3)

    @app.get("/broken")
    async def broken() -> EventSourceResponse:
        async def fails() -> AsyncIterator[str]:
            yield "before"
            raise RuntimeError("the source broke")

        return respond(fails())

    @app.get("/resume-point")
    async def resume_point(request: Request) -> dict[str, str | None]:
        return {"last_event_id": last_event_id(request)}

    @app.get("/me/events", response_model=None)
    async def my_events(request: Request) -> JSONResponse | EventSourceResponse:
        token = request.headers.get("authorization", "")
        if not token.startswith("Bearer "):
            return JSONResponse({"error": "log in first"}, status_code=401)
        user = token.removeprefix("Bearer ")
        return hub.stream(request, [f"user.{user}", "everyone"], heartbeat=0.05)

    app.mount("/sse", hub.asgi_app())
    return app


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def url(hub: Hub, probe: Probe) -> Iterator[str]:
    with serve_asgi(make_app(hub, probe)) as server:
        yield server.url


def publish(url: str, **fields: object) -> str:
    reply = http.post(f"{url}/sse/publish", json=fields)
    assert reply.status_code == 200, reply.text
    [event_id] = reply.json()["ids"]
    return str(event_id)


# -- EventSourceResponse ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_kind_of_item_and_a_clean_end(probe: Probe) -> None:
    # In-process (ssehub.testing): the encoding of items is the point, not the wire.
    async with stream(make_app(Hub(), probe), "/kinds") as response:
        received = await response.rest()
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert bytes(response.body).startswith(b"retry: 1500\n\n")
    assert response.decoder.retry == 2500
    assert_events(
        received,
        [
            "plain text",
            "two\nlines",
            '{"n":1,"text":"é"}',
            "[1,2]",
            '{"sensor":"t1","value":21.5}',
            Event("custom", "update", id="7"),
            Event("pre-encoded", "raw"),
            Event("bye", "end"),
        ],
    )
    assert probe.closed.is_set()


def test_a_blocking_sync_generator_streams_and_is_closed(url: str, probe: Probe) -> None:
    with events(f"{url}/sync?count=5") as stream:
        assert [e.data for e in stream.rest()] == [f"tick {i}" for i in range(5)]
    assert probe.closed.wait(WAIT)


def test_heartbeats_while_the_source_is_quiet(url: str) -> None:
    with events(f"{url}/forever") as stream:
        assert stream.next().data == "first"
        stream.read_until(b": heartbeat\n\n")


def test_client_gone_closes_an_idle_async_generator(url: str, probe: Probe) -> None:
    with events(f"{url}/forever") as stream:
        assert stream.next().data == "first"
        assert not probe.closed.is_set()
    # Nothing more will ever be sent: only listening for http.disconnect can notice.
    assert probe.closed.wait(WAIT)
    [response] = probe.responses
    assert response.ended == "client disconnected"


def test_client_gone_closes_a_busy_sync_generator(url: str, probe: Probe) -> None:
    with events(f"{url}/sync?count=-1") as stream:
        stream.take(3)
    # uvicorn's send() after a disconnect silently does nothing, so without listening for
    # http.disconnect this generator would run forever.
    assert probe.closed.wait(WAIT)
    assert probe.responses[0].ended == "client disconnected"


@contextmanager
def frozen_client(url: str, path: str) -> Iterator[socket.socket]:
    """GET `path`, then never read: a tiny receive window, so the server's sends soon stall."""
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        yield sock


def test_a_frozen_client_is_dropped_after_send_timeout(url: str, probe: Probe) -> None:
    with frozen_client(url, "/flood"):
        assert probe.closed.wait(WAIT)
    assert probe.responses[0].ended == "client too slow: send timed out"


def test_a_failing_source_ends_the_body_unfinished(url: str) -> None:
    # No final chunk: the client can tell a broken stream from a finished one.
    assert [e.data for e in broken_off(f"{url}/broken")] == ["before"]


def test_last_event_id_from_header_or_query(url: str) -> None:
    assert http.get(f"{url}/resume-point").json() == {"last_event_id": None}
    by_header = http.get(f"{url}/resume-point", headers={"Last-Event-ID": "41"})
    assert by_header.json() == {"last_event_id": "41"}
    by_query = http.get(f"{url}/resume-point?last_event_id=42")
    assert by_query.json() == {"last_event_id": "42"}


# -- the hub, mounted ---------------------------------------------------------------------------


def test_mounted_hub_publishes_and_streams_topics(url: str) -> None:
    with events(f"{url}/sse/events", params={"topic": ["a", "b"]}) as stream:
        stream.until_position()
        first = publish(url, topic="a", data="1")
        publish(url, topic="c", data="not mine")
        publish(url, topic=["a", "b"], data="2: once", event="both")
        received = stream.take(2)
    assert [(e.event, e.data) for e in received] == [("message", "1"), ("both", "2: once")]
    assert received[0].id == first
    assert bytes(stream.raw).startswith(b": ssehub\nretry: 3000\n\n")


def test_mounted_hub_resumes_after_last_event_id(url: str) -> None:
    ids = [publish(url, topic="t", data=str(i)) for i in range(4)]
    with events(f"{url}/sse/events?topic=t", last_event_id=ids[1]) as stream:
        assert [e.data for e in stream.take(2)] == ["2", "3"]
        publish(url, topic="t", data="live")
        assert stream.next().data == "live"


@pytest.mark.anyio
async def test_mounted_hub_resets_an_unknown_last_event_id(probe: Probe) -> None:
    async with (
        Hub() as hub,
        stream(make_app(hub, probe), "/sse/events?topic=t", last_event_id="not-an-id") as events,
    ):
        reset = await events.next()
        await hub.publish("t", "live")
        live = await events.next()
    assert reset.event == "reset"
    assert json.loads(reset.data)["last_event_id"] == "not-an-id"
    assert live.data == "live"
    assert live.id != reset.id


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/sse/events", None, 400, "missing query parameter 'topic'"),
        ("GET", "/sse/events?topic=a%20b", None, 400, "topic 'a b' is invalid"),
        ("POST", "/sse/publish", {"data": "x"}, 400, "missing field 'topic'"),
        ("POST", "/sse/publish", {"topic": "t", "id": "1"}, 400, "ids are assigned by the hub"),
        ("POST", "/sse/publish", {"topic": "t", "event": "a\nb"}, 400, "line break"),
        ("GET", "/sse/publish", None, 405, "method GET not allowed on /publish"),
        ("GET", "/sse/nothing", None, 404, "no route for GET /nothing"),
    ],
)
def test_mounted_hub_refuses_with_json_errors(
    url: str, method: str, path: str, body: object, status: int, message: str
) -> None:
    reply = http.request(method, f"{url}{path}", json=body)
    assert reply.status_code == status
    assert message in reply.json()["error"]


def test_mounted_hub_refuses_unknown_content_types(url: str) -> None:
    reply = http.post(f"{url}/sse/publish", content=b"x", headers={"content-type": "text/xml"})
    assert reply.status_code == 415
    assert "unsupported content type" in reply.json()["error"]


def test_form_publish_like_curl(url: str) -> None:
    with events(f"{url}/sse/events?topic=t") as stream:
        stream.until_position()
        reply = http.post(f"{url}/sse/publish", data={"topic": "t", "data": "hello"})
        assert reply.status_code == 200
        assert stream.next().data == "hello"


# -- hub_stream in the app's own route ----------------------------------------------------------


def test_own_route_authenticates_and_picks_topics(url: str) -> None:
    refused = http.get(f"{url}/me/events")
    assert refused.status_code == 401
    auth = {"Authorization": "Bearer ann"}
    with events(f"{url}/me/events", headers=auth) as stream:
        stream.until_position()
        publish(url, topic="user.bob", data="for bob")
        publish(url, topic="user.ann", data="for ann")
        publish(url, topic="everyone", data="for all")
        assert [e.data for e in stream.take(2)] == ["for ann", "for all"]


def test_own_route_resumes_and_beats(url: str) -> None:
    auth = {"Authorization": "Bearer ann"}
    first = publish(url, topic="user.ann", data="1")
    publish(url, topic="user.ann", data="2")
    with events(f"{url}/me/events", headers=auth, last_event_id=first) as stream:
        assert stream.next().data == "2"
        stream.read_until(b": heartbeat\n\n")


def test_a_frozen_hub_subscriber_is_dropped_and_counted(hub: Hub, url: str) -> None:
    with frozen_client(url, "/sse/events?topic=t") as sock:
        assert sock.recv(1)  # subscribed: the head is on its way
        data = "x" * 65536
        # Once the socket buffers are full, the pending-bytes bound (1 MiB) is passed within 17
        # more events: the client is dropped rather than buffered without end.
        for _ in range(1000):
            if hub.stats.slow_dropped:
                break
            publish(url, topic="t", data=data)
    assert hub.stats.slow_dropped == 1


def test_events_reader_helper_reports_the_end(url: str) -> None:
    with events(f"{url}/sync?count=1") as stream:
        assert isinstance(stream, Events)
        assert stream.next().data == "tick 0"
        with pytest.raises(StopIteration):
            stream.next()
