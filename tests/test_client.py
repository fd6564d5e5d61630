"""EventSource / AsyncEventSource against a server that misbehaves on purpose, over loopback."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from typing import TYPE_CHECKING

import httpx
import pytest

from ssehub import client as client_module
from ssehub.client import (
    CLOSED,
    CONNECTING,
    OPEN,
    AsyncEventSource,
    EventSource,
    SSEError,
    backoff_delay,
)
from ssehub.wire import Event

if TYPE_CHECKING:
    from support.misbehaving_server import MisbehavingServer, Recorded

pytest_plugins = ("support.misbehaving_server",)  # the `server` fixture


class RetryLog:
    """An `on_retry` hook: records the chosen delays and the errors; closes `source` at `limit`."""

    def __init__(self, limit: int = 0) -> None:
        self.delays: list[float] = []
        self.errors: list[BaseException | None] = []
        self.limit = limit
        self.source: EventSource | None = None

    def __call__(self, delay: float, error: BaseException | None) -> None:
        self.delays.append(delay)
        self.errors.append(error)
        if len(self.delays) == self.limit and self.source is not None:
            self.source.close()


def numbers(n: int) -> list[str]:
    return [f"event {i}" for i in range(1, n + 1)]


def resumed_from(requests: list[Recorded]) -> list[str | None]:
    return [r.headers.get("last-event-id") for r in requests]


def consume_in_thread(source: EventSource) -> tuple[threading.Thread, list[Event], threading.Event]:
    """Iterate `source` in a thread; the Event is set when the first event arrives."""
    received: list[Event] = []
    first = threading.Event()

    def run() -> None:
        for event in source:
            received.append(event)
            first.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, received, first


def close_and_join(source: EventSource, thread: threading.Thread) -> None:
    """`close()` from this thread must end the consuming thread's loop."""
    source.close()
    thread.join(10)
    assert not thread.is_alive()


# -- delivery: exactly once, in order, across disconnects ---------------------------------------


def test_every_event_once_in_order_across_1000_disconnects(server: MisbehavingServer) -> None:
    url = f"{server.url}/numbers?per=3&total=3000&retry=1&cut=1"
    with EventSource(url) as source:
        received = list(source)
        assert source.ready_state is CLOSED
        assert source.last_event_id == "3000"
    assert [e.data for e in received] == numbers(3000)
    assert [e.id for e in received] == [str(n) for n in range(1, 3001)]
    streams = server.seen("/numbers")
    assert len(streams) == 1001  # 1000 streams cut short, then the 204
    # Each reconnection resumes from the last complete event, never from the half-sent one.
    assert resumed_from(streams) == [None] + [str(n) for n in range(3, 3001, 3)]


@pytest.mark.anyio
async def test_async_every_event_once_in_order_across_1000_disconnects(
    server: MisbehavingServer,
) -> None:
    url = f"{server.url}/numbers?per=3&total=3000&retry=1&cut=1"
    async with AsyncEventSource(url) as source:
        received = [event async for event in source]
        assert source.ready_state is CLOSED
    assert [e.data for e in received] == numbers(3000)
    assert [e.id for e in received] == [str(n) for n in range(1, 3001)]
    assert resumed_from(server.seen("/numbers")) == [None] + [str(n) for n in range(3, 3001, 3)]


def test_leaving_the_loop_mid_chunk_and_iterating_again_loses_nothing(
    server: MisbehavingServer,
) -> None:
    with EventSource(f"{server.url}/numbers?per=10&total=10", retry=0) as source:
        first = []
        for event in source:
            first.append(event.data)
            if len(first) == 3:
                break
        assert source.last_event_id == "3"  # not "10": the rest of that chunk was never seen
        rest = [event.data for event in source]
    assert first + rest == numbers(10)
    assert resumed_from(server.seen("/numbers")) == [None, "3", "10"]


# -- Last-Event-ID --------------------------------------------------------------------------------


def test_last_event_id_to_start_from(server: MisbehavingServer) -> None:
    with EventSource(f"{server.url}/numbers?per=3&total=6", last_event_id="4", retry=0) as source:
        assert [e.data for e in source] == ["event 5", "event 6"]
    assert resumed_from(server.seen("/numbers")) == ["4", "6"]


def test_an_id_without_an_event_still_carries_over(server: MisbehavingServer) -> None:
    """A blank line after `id:` sets the last event id even though nothing is dispatched."""
    with EventSource(f"{server.url}/idonly?id=42", retry=0) as source:
        assert list(source) == []
        assert source.last_event_id == "42"
    assert resumed_from(server.seen("/idonly")) == [None, "42"]


def test_the_id_of_an_incomplete_event_does_not_count(server: MisbehavingServer) -> None:
    with EventSource(f"{server.url}/numbers?per=2&total=4&cut=1", retry=0) as source:
        assert [e.data for e in source] == numbers(4)
    assert resumed_from(server.seen("/numbers")) == [None, "2", "4"]


# -- retry: and backoff ---------------------------------------------------------------------------


def test_the_server_retry_time_is_the_reconnection_delay(server: MisbehavingServer) -> None:
    log = RetryLog()
    url = f"{server.url}/numbers?per=2&total=6&retry=7"
    with EventSource(url, on_retry=log) as source:
        assert source.retry == 3000
        assert [e.data for e in source] == numbers(6)
        assert source.retry == 7
    # Each connection delivered events, so each reconnection waits exactly the server's time.
    assert log.delays == [0.007, 0.007, 0.007]
    assert len(server.seen("/numbers")) == 4


def test_the_constructor_retry_time_until_the_server_sends_one(
    server: MisbehavingServer,
) -> None:
    log = RetryLog()
    with EventSource(f"{server.url}/numbers?per=2&total=4", retry=5, on_retry=log) as source:
        assert [e.data for e in source] == numbers(4)
    assert log.delays == [0.005, 0.005]


def test_repeated_failures_back_off_with_jitter_up_to_the_cap(server: MisbehavingServer) -> None:
    """`/empty` opens and ends without an event: each reconnection is another failure."""
    log = RetryLog(limit=12)
    url = f"{server.url}/empty"
    with EventSource(url, retry=1, max_retry_delay=0.02, on_retry=log) as log.source:
        assert list(log.source) == []
    assert log.delays[0] == 0.001
    assert all(0.001 <= d <= 0.02 for d in log.delays)
    assert max(log.delays) > 0.001  # it backed off
    assert log.errors == [None] * 12  # clean ends of stream, not errors
    assert len(server.seen("/empty")) == 12


def test_connection_errors_are_retried_with_backoff() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = RetryLog(limit=5)
    url = f"http://127.0.0.1:{port}/events"
    with EventSource(url, retry=1, max_retry_delay=0.01, on_retry=log) as log.source:
        assert list(log.source) == []
    assert log.delays[0] == 0.001 and all(d <= 0.01 for d in log.delays)
    assert all(isinstance(e, httpx.ConnectError) for e in log.errors)


def test_a_read_timeout_reconnects_and_resumes(server: MisbehavingServer) -> None:
    log = RetryLog(limit=2)
    with EventSource(f"{server.url}/stall", timeout=0.5, retry=0, on_retry=log) as log.source:
        assert [e.data for e in log.source] == ["first", "first"]
    assert all(isinstance(e, httpx.ReadTimeout) for e in log.errors)
    assert resumed_from(server.seen("/stall")) == [None, "1"]


def test_backoff_policy() -> None:
    rng = random.Random(7)
    assert backoff_delay(1500, 1, 0.0, 30.0, rng) == 1.5  # the first reconnection: retry time
    assert backoff_delay(60_000, 5, 60.0, 30.0, rng) == 60.0  # a longer retry: is honoured
    previous, delays = 0.1, []
    for failures in range(2, 40):
        delay = backoff_delay(100, failures, previous, 5.0, rng)
        assert 0.1 <= delay <= min(5.0, previous * 3)
        previous = delay
        delays.append(delay)
    assert max(delays) > 2.5  # decorrelated jitter grows toward the cap
    assert backoff_delay(0, 3, 0.0, 1.0, rng) > 0  # retry: 0 still backs off when failing


def test_a_connection_that_delivered_events_resets_the_backoff() -> None:
    """The sans-IO session alone: no server, no clock."""
    session = client_module._Session("http://example.invalid/", retry=100, max_retry_delay=60)
    error = httpx.ConnectError("refused")
    assert session.ended(error) == 0.1  # first failure: the retry time
    growing = [session.ended(error) for _ in range(30)]
    assert max(growing) > 1  # repeated failures back off
    decoder = session.opened()
    assert [e.data for e in session.deliver(decoder, b"retry: 250\nid: 7\ndata: x\n\n")] == ["x"]
    assert session.ended(None) == 0.25  # delivered: back to the (new) retry time
    assert session.last_event_id == "7"
    decoder = session.opened()
    assert decoder.last_event_id == "7"  # handed over to the next connection's decoder
    assert list(session.deliver(decoder, b": nothing\n\n")) == []
    assert 0.25 <= session.ended(None) <= 0.75  # nothing delivered: backing off again


# -- the end, and refusals ------------------------------------------------------------------------


def test_204_ends_iteration_cleanly(server: MisbehavingServer) -> None:
    with EventSource(f"{server.url}/status/204") as source:
        assert list(source) == []
        assert source.ready_state is CLOSED
        assert list(source) == []  # for good: no new connection
    assert len(server.seen("/status/204")) == 1


@pytest.mark.parametrize(("code", "message"), [(401, "token expired"), (500, "on fire")])
def test_an_error_status_raises_with_status_headers_and_body(
    server: MisbehavingServer, code: int, message: str
) -> None:
    url = f"{server.url}/status/{code}"
    with EventSource(url) as source, pytest.raises(SSEError) as caught:
        list(source)
    error = caught.value
    assert error.status_code == code
    assert error.headers["content-type"] == "application/json"
    assert message in json.loads(error.body)["error"]
    assert f"HTTP {code}" in str(error) and message in str(error) and url in str(error)
    assert source.ready_state is CLOSED
    assert len(server.seen(f"/status/{code}")) == 1  # never retried


def test_a_wrong_content_type_raises(server: MisbehavingServer) -> None:
    with EventSource(f"{server.url}/html") as source, pytest.raises(SSEError) as caught:
        list(source)
    assert caught.value.status_code == 200
    assert "text/html" in str(caught.value) and "text/event-stream" in str(caught.value)
    assert caught.value.body == "<h1>not a stream</h1>"
    assert len(server.seen("/html")) == 1


def test_on_open_may_reject_a_response(server: MisbehavingServer) -> None:
    seen: list[int] = []

    def on_open(response: httpx.Response) -> None:
        seen.append(response.status_code)
        raise PermissionError("not the server I expected")

    with EventSource(f"{server.url}/stall", on_open=on_open) as source:
        with pytest.raises(PermissionError):
            list(source)
        assert source.ready_state is CLOSED
        assert list(source) == []  # rejected for good
    assert seen == [200]
    assert len(server.seen("/stall")) == 1


def test_redirects_are_followed(server: MisbehavingServer) -> None:
    to = "/numbers?per=2&total=4"
    with EventSource(f"{server.url}/redirect", params={"to": to}, retry=0) as source:
        assert [e.data for e in source] == numbers(4)
    assert resumed_from(server.seen("/numbers")) == [None, "2", "4"]


# -- requests: headers, method, body --------------------------------------------------------------


def test_sse_request_headers(server: MisbehavingServer) -> None:
    with EventSource(
        f"{server.url}/numbers?per=5&total=5", headers={"X-Extra": "1"}, retry=0
    ) as source:
        list(source)
    first = server.seen("/numbers")[0]
    assert first.method == "GET"
    assert first.headers["accept"] == "text/event-stream"
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["x-extra"] == "1"
    assert "last-event-id" not in first.headers


def test_a_headers_callable_runs_once_per_connection(server: MisbehavingServer) -> None:
    calls = 0

    def token() -> dict[str, str]:
        nonlocal calls
        calls += 1
        return {"Authorization": f"Bearer token-{calls}"}

    with EventSource(f"{server.url}/numbers?per=2&total=6", headers=token, retry=0) as source:
        assert [e.data for e in source] == numbers(6)
    seen = [r.headers["authorization"] for r in server.seen("/numbers")]
    assert calls == 4
    assert seen == ["Bearer token-1", "Bearer token-2", "Bearer token-3", "Bearer token-4"]


def test_post_with_a_json_body_on_every_connection(server: MisbehavingServer) -> None:
    url = f"{server.url}/numbers?per=2&total=4"
    with EventSource(url, method="POST", json={"prompt": "hi"}, retry=0) as source:
        assert [e.data for e in source] == numbers(4)
    requests = server.seen("/numbers")
    assert [r.method for r in requests] == ["POST"] * 3
    assert all(json.loads(r.body) == {"prompt": "hi"} for r in requests)
    assert all(r.headers["content-type"] == "application/json" for r in requests)


def test_a_given_client_is_used_and_not_closed(server: MisbehavingServer) -> None:
    with httpx.Client(headers={"User-Agent": "mine"}) as client:
        with EventSource(f"{server.url}/numbers?per=3&total=3", client=client, retry=0) as source:
            assert len(list(source)) == 3
        assert not client.is_closed
    assert server.seen("/numbers")[0].headers["user-agent"] == "mine"


def test_ready_state_follows_the_connection(server: MisbehavingServer) -> None:
    states = []
    with EventSource(f"{server.url}/numbers?per=1&total=1", retry=0) as source:
        states.append(source.ready_state)
        for _ in source:
            states.append(source.ready_state)
        states.append(source.ready_state)
    assert states == [CONNECTING, OPEN, CLOSED]
    assert repr(source).endswith("CLOSED>")


# -- close() --------------------------------------------------------------------------------------


def test_close_from_another_thread_stops_a_stalled_read(server: MisbehavingServer) -> None:
    source = EventSource(f"{server.url}/stall", timeout=None)
    thread, received, first = consume_in_thread(source)
    assert first.wait(10)
    close_and_join(source, thread)
    assert [e.data for e in received] == ["first"]
    assert source.ready_state is CLOSED
    assert len(server.seen("/stall")) == 1


def test_close_from_another_thread_stops_the_retry_wait(server: MisbehavingServer) -> None:
    waiting = threading.Event()
    url = f"{server.url}/numbers?per=1&total=5&retry=600000"  # ten minutes
    source = EventSource(url, on_retry=lambda delay, error: waiting.set())
    thread, received, _ = consume_in_thread(source)
    assert waiting.wait(10)
    close_and_join(source, thread)
    assert [e.data for e in received] == ["event 1"]


def test_close_while_waiting_for_the_response_headers(server: MisbehavingServer) -> None:
    source = EventSource(f"{server.url}/hang", timeout=None)
    thread, received, _ = consume_in_thread(source)
    server.wait_for(lambda requests: any(r.path == "/hang" for r in requests))
    close_and_join(source, thread)
    assert received == []


def test_close_inside_the_loop_stops_before_the_rest_of_the_chunk(
    server: MisbehavingServer,
) -> None:
    with EventSource(f"{server.url}/numbers?per=10&total=10") as source:
        received = []
        for event in source:
            received.append(event.data)
            source.close()
        assert source.last_event_id == "1"
    assert received == ["event 1"]


def test_last_event_id_follows_each_event_handed_out(server: MisbehavingServer) -> None:
    with EventSource(f"{server.url}/numbers?per=10&total=10") as source:
        positions = []
        for event in source:
            positions.append((event.id, source.last_event_id))
            if event.id == "10":
                break
    assert positions == [(str(n), str(n)) for n in range(1, 11)]


# -- async ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_headers_may_be_a_coroutine_function(server: MisbehavingServer) -> None:
    calls = 0

    async def token() -> dict[str, str]:
        nonlocal calls
        calls += 1
        return {"Authorization": f"Bearer {calls}"}

    url = f"{server.url}/numbers?per=2&total=4"
    async with AsyncEventSource(url, headers=token, retry=0) as source:
        assert [e.data async for e in source] == numbers(4)
    assert calls == 3
    assert [r.headers["authorization"] for r in server.seen("/numbers")] == [
        "Bearer 1",
        "Bearer 2",
        "Bearer 3",
    ]


@pytest.mark.anyio
async def test_async_close_from_another_task_stops_a_stalled_read(
    server: MisbehavingServer,
) -> None:
    source = AsyncEventSource(f"{server.url}/stall", timeout=None)
    first = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for event in source:
            received.append(event.data)
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    source.close()
    await asyncio.wait_for(task, 10)
    await source.aclose()
    assert received == ["first"]
    assert source.ready_state is CLOSED
    assert source._client.is_closed


@pytest.mark.anyio
async def test_async_close_from_another_thread_stops_a_stalled_read(
    server: MisbehavingServer,
) -> None:
    async with AsyncEventSource(f"{server.url}/stall", timeout=None) as source:
        received = []
        async for event in source:
            received.append(event.data)
            threading.Thread(target=source.close).start()
    assert received == ["first"]


@pytest.mark.anyio
async def test_async_aclose_stops_the_retry_wait(server: MisbehavingServer) -> None:
    waiting = asyncio.Event()
    url = f"{server.url}/numbers?per=1&total=5&retry=600000"
    source = AsyncEventSource(url, on_retry=lambda delay, error: waiting.set())
    received: list[str] = []

    async def consume() -> None:
        async for event in source:
            received.append(event.data)

    task = asyncio.create_task(consume())
    await waiting.wait()
    await source.aclose()
    await asyncio.wait_for(task, 10)
    assert received == ["event 1"]
    assert source._client.is_closed


@pytest.mark.anyio
async def test_async_refusals_and_204(server: MisbehavingServer) -> None:
    async with AsyncEventSource(f"{server.url}/status/401") as source:
        with pytest.raises(SSEError) as caught:
            async for _ in source:
                pass
    assert caught.value.status_code == 401 and "token expired" in str(caught.value)
    async with AsyncEventSource(f"{server.url}/status/204") as source:
        assert [e async for e in source] == []
        assert source.ready_state is CLOSED


@pytest.mark.anyio
async def test_async_on_open_may_be_async_and_reject(server: MisbehavingServer) -> None:
    async def on_open(response: httpx.Response) -> None:
        raise PermissionError(response.headers["content-type"])

    async with AsyncEventSource(f"{server.url}/stall", on_open=on_open) as source:
        with pytest.raises(PermissionError, match="text/event-stream"):
            async for _ in source:
                pass


@pytest.mark.anyio
async def test_async_post_with_a_given_client(server: MisbehavingServer) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{server.url}/numbers?per=2&total=4"
        source = AsyncEventSource(url, method="POST", content=b"raw", client=client, retry=0)
        async with source:
            assert [e.data async for e in source] == numbers(4)
        assert not client.is_closed
    assert [r.body for r in server.seen("/numbers")] == [b"raw"] * 3


def test_json_and_content_are_exclusive() -> None:
    with pytest.raises(TypeError):
        EventSource("http://127.0.0.1:1/", json={}, content=b"")
