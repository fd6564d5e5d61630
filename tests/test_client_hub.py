"""The client against the real hub (`ssehub serve` in a subprocess), while publishing goes on."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub.client import AsyncEventSource, EventSource, SSEError
from ssehub.wire import Event

COUNT = 200
DROP_AT = {40, 80, 120, 160}  # four drops: four replays


class Log:
    """The hooks and records of one listener: accepted responses, and the events received."""

    def __init__(self, opened: threading.Event | asyncio.Event) -> None:
        self.opened = opened
        self.responses: list[httpx.Response] = []
        self.received: list[Event] = []

    def on_open(self, response: httpx.Response) -> None:
        self.responses.append(response)
        self.opened.set()

    def take(self, event: Event, drop: Callable[[httpx.Response], None]) -> bool:
        """Record `event`; drop the connection every so often; True once all have come."""
        self.received.append(event)
        if len(self.received) in DROP_AT:
            drop(self.responses[-1])
        return len(self.received) == COUNT

    def check(self, hub: HubProcess, published: list[str]) -> None:
        """Every event exactly once, in order; every reconnection was a replay from history."""
        assert [e.data for e in self.received] == [f"n{n}" for n in range(COUNT)]
        assert [e.id for e in self.received] == published
        ids = [int(e.id or 0) for e in self.received]
        assert ids == sorted(set(ids))
        assert len(self.responses) == len(DROP_AT) + 1
        text = httpx.get(f"{hub.url}/metrics").text
        assert f"\nssehub_replays_total {len(DROP_AT)}\n" in text
        assert "\nssehub_resets_total 0\n" in text


def network_drop(response: httpx.Response) -> None:
    """What a flaky network does to a connection: it goes away under the reader."""
    sock = response.extensions["network_stream"].get_extra_info("socket")
    sock.shutdown(socket.SHUT_RDWR)


def test_every_published_event_arrives_once_while_the_connection_is_dropped(
    start_hub: Callable[..., HubProcess],
) -> None:
    hub = start_hub("--retry", "5")
    log = Log(threading.Event())
    source = EventSource(f"{hub.url}/events?topic=orders", on_open=log.on_open)

    def listen() -> None:
        for event in source:
            # Closing the response under the iterator: it reconnects and resumes.
            if log.take(event, httpx.Response.close):
                source.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert log.opened.wait(10)
    with httpx.Client(base_url=hub.url) as client:
        published = [
            client.post("/publish", json={"topic": "orders", "data": f"n{n}"}).json()["ids"][0]
            for n in range(COUNT)
        ]
    thread.join(30)
    assert not thread.is_alive()
    log.check(hub, published)
    assert source.last_event_id == published[-1]


@pytest.mark.anyio
async def test_async_every_published_event_arrives_once_across_network_drops(
    start_hub: Callable[..., HubProcess],
) -> None:
    hub = start_hub("--retry", "5")
    log = Log(asyncio.Event())
    source = AsyncEventSource(f"{hub.url}/events", params={"topic": "orders"}, on_open=log.on_open)

    async def listen() -> None:
        async for event in source:
            if log.take(event, network_drop):
                await source.aclose()

    task = asyncio.create_task(listen())
    await log.opened.wait()
    published = []
    async with httpx.AsyncClient(base_url=hub.url) as client:
        for n in range(COUNT):
            reply = await client.post("/publish", json={"topic": "orders", "data": f"n{n}"})
            published.extend(reply.json()["ids"])
    await asyncio.wait_for(task, 30)
    log.check(hub, published)


def test_a_token_opens_a_hub_that_needs_one(start_hub: Callable[..., HubProcess]) -> None:
    from ssehub.auth import mint_token

    secret = "a-secret-of-at-least-32-bytes-for-hs256!"
    url = start_hub("--jwt-key", secret).url
    token = mint_token(secret, publish=["*"], subscribe=["t"], ttl=600)
    auth = {"Authorization": f"Bearer {token}"}
    start = httpx.post(f"{url}/publish", data={"topic": "t"}, headers=auth).json()["ids"][0]
    private = {"topic": "t", "data": "private", "private": "on"}
    assert httpx.post(f"{url}/publish", data=private, headers=auth).status_code == 200
    refused = EventSource(f"{url}/events", params={"topic": "t"}, timeout=5)
    with pytest.raises(SSEError) as error:
        next(iter(refused))
    assert error.value.status_code == 401
    with EventSource(
        f"{url}/events", params={"topic": "t"}, token=token, last_event_id=start, timeout=10
    ) as source:
        assert next(iter(source)).data == "private"
