"""The ASGI responses' engine, driven through the ASGI interface itself.

These are about the ASGI messages (how many sends, which bytes objects, when the response
ends), so a scripted server — `receive` and `send` callables the test controls — is the right
tool; the HTTP behaviour is covered over real uvicorn in test_asgi.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ssehub.asgi import EventSourceResponse, HubStreamResponse, end_streams
from ssehub.hub import Hub
from ssehub.wire import Decoder

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}


class ScriptedServer:
    """Records what the app sends; `hold()` makes body sends wait, as for a client not reading."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._release.set()
        self._disconnect = asyncio.Event()
        self.held = 0  # sends that had to wait

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]

    @property
    def finished(self) -> bool:
        return any(m["type"] == "http.response.body" and not m["more_body"] for m in self.messages)

    def hold(self) -> None:
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def disconnect(self) -> None:
        self._disconnect.set()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not self._release.is_set():
            async with self._changed:
                self.held += 1
                self._changed.notify_all()
            await self._release.wait()
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def receive(self) -> dict[str, Any]:
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), 10)


def serve(response: Any, server: ScriptedServer) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(response(SCOPE, server.receive, server.send))


async def subscribed(server: ScriptedServer) -> None:
    """Until a hub stream's opening (with the `id:` position) has been sent."""
    await server.until(lambda: any(b"\nid: " in body for body in server.bodies))


# -- hub streams --------------------------------------------------------------------------------


async def test_all_pending_events_go_out_in_one_send() -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        task = serve(HubStreamResponse(hub, ["t"], None), server)
        await subscribed(server)
        server.hold()
        await hub.publish("t", "0")
        await server.until(lambda: server.held == 1)  # its send waits for the client
        for i in range(1, 6):
            await hub.publish("t", str(i))
        server.release()
        await server.until(lambda: b"data: 5" in server.bodies[-1])
        task.cancel()
    [_, first, batch] = server.bodies
    assert [e.data for e in Decoder().feed(first)] == ["0"]
    assert [e.data for e in Decoder().feed(batch)] == ["1", "2", "3", "4", "5"]


async def test_an_event_is_the_same_bytes_object_for_every_subscriber() -> None:
    async with Hub() as hub:
        servers = [ScriptedServer() for _ in range(3)]
        tasks = [serve(HubStreamResponse(hub, ["t"], None), server) for server in servers]
        for server in servers:
            await subscribed(server)
        await hub.publish("t", "once")
        for server in servers:
            await server.until(lambda server=server: b"data: once" in server.bodies[-1])
        for task in tasks:
            task.cancel()
    first, *others = (server.bodies[-1] for server in servers)
    assert all(other is first for other in others)  # encoded once, never copied


@pytest.mark.parametrize(
    ("options", "events", "reason"),
    [
        (
            {"max_pending_bytes": 10_000, "send_timeout": None},
            20,  # 20 kB: past the bound, which ends the stream at once
            "client too slow: too many bytes pending",
        ),
        ({"send_timeout": 0.05}, 1, "client too slow: send timed out"),
    ],
    ids=["too many bytes pending", "send timeout"],
)
async def test_a_client_that_stops_reading_is_dropped(
    options: dict[str, Any], events: int, reason: str
) -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        response = HubStreamResponse(hub, ["t"], None, **options)
        task = serve(response, server)
        await subscribed(server)
        server.hold()  # and never released
        await hub.publish("t", "x" * 1000)
        await server.until(lambda: server.held == 1)  # the client has stopped reading
        for _ in range(events - 1):
            await hub.publish("t", "x" * 1000)
        await asyncio.wait_for(task, 10)  # ends although its send never completes
        assert response.ended == reason
        assert hub.stats.slow_dropped == 1
        assert hub.subscriber_count() == 0


async def test_a_disconnect_unsubscribes_without_another_send() -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        response = HubStreamResponse(hub, ["t"], None)
        task = serve(response, server)
        await subscribed(server)
        server.disconnect()
        await asyncio.wait_for(task, 10)
        assert response.ended == "client disconnected"
        assert not server.finished
        assert hub.subscriber_count() == 0


async def test_end_streams_ends_open_and_later_streams_on_that_loop_only() -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        task = serve(HubStreamResponse(hub, ["t"], None), server)
        await subscribed(server)
        end_streams(asyncio.get_running_loop())
        await asyncio.wait_for(task, 10)
        assert server.finished  # a proper end: the client reconnects elsewhere, loses nothing
        later = ScriptedServer()
        await asyncio.wait_for(serve(HubStreamResponse(hub, ["t"], None), later), 10)
        assert later.finished
        assert hub.subscriber_count() == 0


async def test_shutdown_does_not_wait_for_a_client_that_stopped_reading() -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        response = HubStreamResponse(hub, ["t"], None, send_timeout=None)
        task = serve(response, server)
        await subscribed(server)
        server.hold()
        await hub.publish("t", "stuck")
        await server.until(lambda: server.held == 1)
        end_streams(asyncio.get_running_loop())
        await asyncio.wait_for(task, 10)
        assert response.ended == "server shutdown"
        assert hub.subscriber_count() == 0


def test_end_streams_leaves_other_loops_alone() -> None:
    ended: list[str | None] = []

    async def one_stream(end_this_loop: bool) -> None:
        async with Hub() as hub:
            server = ScriptedServer()
            response = HubStreamResponse(hub, ["t"], None)
            task = serve(response, server)
            await subscribed(server)
            if end_this_loop:
                end_streams(asyncio.get_running_loop())
            else:
                server.disconnect()
            await asyncio.wait_for(task, 10)
            ended.append(response.ended)

    asyncio.run(one_stream(end_this_loop=True))
    asyncio.run(one_stream(end_this_loop=False))
    assert ended == ["server shutdown", "client disconnected"]


async def test_a_server_cancelling_the_response_still_cleans_up() -> None:
    async with Hub() as hub:
        server = ScriptedServer()
        task = serve(HubStreamResponse(hub, ["t"], None), server)
        await subscribed(server)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hub.subscriber_count() == 0


# -- EventSourceResponse ------------------------------------------------------------------------


class Source:
    """An async generator that records how far it got and whether its `finally` ran."""

    def __init__(self, size: int = 10, count: int | None = None) -> None:
        self.size = size
        self.count = count
        self.produced = 0
        self.closed = asyncio.Event()

    async def items(self) -> AsyncIterator[str]:
        try:
            while self.count is None or self.produced < self.count:
                self.produced += 1
                yield "x" * self.size
            await asyncio.Event().wait()
        finally:
            self.closed.set()


async def test_a_fast_source_waits_for_a_slow_client() -> None:
    source = Source(size=1000)
    server = ScriptedServer()
    server.hold()
    task = serve(EventSourceResponse(source.items()), server)
    for _ in range(200):
        await asyncio.sleep(0)  # let the producer run as far as it is allowed to
    # Event size 1008 bytes: one batch (64 KiB) in the waiting send and at most 64 KiB more.
    assert source.produced <= 2 * (65536 // 1008 + 1)
    server.disconnect()
    server.release()
    await asyncio.wait_for(task, 10)
    assert source.closed.is_set()


async def test_a_stuck_send_closes_the_source() -> None:
    source = Source(count=1)
    server = ScriptedServer()
    server.hold()
    response = EventSourceResponse(source.items(), send_timeout=0.05)
    await asyncio.wait_for(serve(response, server), 10)
    assert response.ended == "client too slow: send timed out"
    assert source.closed.is_set()


async def test_a_server_cancelling_the_response_closes_the_source() -> None:
    source = Source(count=1)
    server = ScriptedServer()
    task = serve(EventSourceResponse(source.items()), server)
    await server.until(lambda: bool(server.bodies))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed.is_set()


async def test_a_sync_iterable_is_read_in_a_thread_and_closed() -> None:
    closed: list[bool] = []

    def numbers() -> Iterator[int]:
        try:
            yield from range(3)
        finally:
            closed.append(True)

    server = ScriptedServer()
    await asyncio.wait_for(serve(EventSourceResponse(numbers()), server), 10)
    assert [e.data for e in Decoder().feed(b"".join(server.bodies))] == ["0", "1", "2"]
    assert server.finished
    assert closed == [True]


async def test_invalid_retry_is_refused() -> None:
    with pytest.raises(ValueError, match="retry"):
        EventSourceResponse([], retry=-1)
