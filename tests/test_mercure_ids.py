"""Publisher-chosen ids (Mercure's `id` field, `Draft.alias`) on every store: the event's wire
id, a resume point like an issued id, unique while retained (`DuplicateId`, nothing stored),
and `EARLIEST` for all retained history. Real stores: memory, a SQLite file, a Redis server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.history_files import downgrade
from support.redis_server import RedisServer

from ssehub.backends import DuplicateId, Store
from ssehub.backends.memory import MemoryStore
from ssehub.backends.redis import RedisStore
from ssehub.backends.sqlite import SqliteStore
from ssehub.hub import Hub
from ssehub.model import EARLIEST, Draft, Publication

pytestmark = pytest.mark.anyio


def update(topic: str, data: str, alias: str | None = None) -> Draft:
    draft = Publication((topic,), data).draft()
    draft.alias = alias
    return draft


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def hub(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[Hub]:
    backend = {
        "memory": "memory",
        "sqlite": f"sqlite:///{tmp_path}/history.db",
        "redis": f"{redis_server.url}?prefix=ids-{uuid.uuid4().hex[:12]}",
    }[request.param]
    async with Hub(backend, history=3) as started:
        yield started


async def test_a_publisher_id_is_the_wire_id_and_a_resume_point(hub: Hub) -> None:
    start = hub.latest
    [first, second, third] = await hub.publish_drafts(
        [update("t", "one", "urn:one"), update("t", "two"), update("t", "three", "urn:3")]
    )
    assert (first, third) == ("urn:one", "urn:3")
    assert second not in ("urn:one", "urn:3")
    async with hub.subscribe("t", last_event_id="urn:one") as sub:
        assert [(e.id, e.data) async for e in _take(sub, 2)] == [(second, "two"), (third, "three")]
    async with hub.subscribe("t", last_event_id=second) as sub:
        assert [(e.id, e.data) async for e in _take(sub, 1)] == [(third, "three")]
    async with hub.subscribe("t", last_event_id=start) as sub:
        assert [e.id async for e in _take(sub, 3)] == [first, second, third]


async def test_a_duplicate_publisher_id_stores_nothing(hub: Hub) -> None:
    start = hub.latest
    await hub.publish_drafts([update("t", "one", "urn:same")])
    with pytest.raises(DuplicateId):
        await hub.publish_drafts([update("t", "two"), update("u", "three", "urn:same")])
    with pytest.raises(DuplicateId):
        await hub.publish_drafts([update("t", "a", "urn:twice"), update("t", "b", "urn:twice")])
    await hub.publish_drafts([update("t", "four")])
    async with hub.subscribe(["t", "u"], last_event_id=start) as sub:
        assert [(e.id, e.data) async for e in _take(sub, 1)] == [("urn:same", "one")]
        [four] = [e async for e in _take(sub, 1)]
    assert four.data == "four"


async def test_earliest_replays_all_retained_history(hub: Hub) -> None:
    async with hub.subscribe("u") as delivered:
        await hub.publish_drafts([update("t", str(n)) for n in range(5)])
        await hub.publish_drafts([update("u", "other")])
        # Delivered here (Redis: read back from the log): so were the five before it.
        assert [e.data async for e in _take(delivered, 1)] == ["other"]
    async with hub.subscribe("t", last_event_id=EARLIEST) as sub:
        assert [e.data async for e in _take(sub, 3)] == ["2", "3", "4"]  # history=3
        await hub.publish_drafts([update("t", "live")])
        assert [e.data async for e in _take(sub, 1)] == ["live"]


async def test_an_unknown_id_is_a_reset(hub: Hub) -> None:
    await hub.publish_drafts([update("t", "one", "urn:known")])
    async with hub.subscribe("t", last_event_id="urn:unknown") as sub:
        [reset] = [e async for e in _take(sub, 1)]
    assert reset.event == "reset" and reset.id == hub.latest


async def _take(sub: AsyncIterator[object], count: int) -> AsyncIterator:  # type: ignore[type-arg]
    for _ in range(count):
        yield await sub.__anext__()


async def test_a_sqlite_history_from_before_publisher_ids_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    async with Hub(f"sqlite:///{path}") as hub:
        first = await hub.publish("t", "before")
    downgrade(path, 1)
    async with Hub(f"sqlite:///{path}") as hub:
        assert await hub.publish_drafts([update("t", "after", "urn:after")]) == ["urn:after"]
        async with hub.subscribe("t", last_event_id=EARLIEST) as sub:
            assert [(e.id, e.data) async for e in _take(sub, 2)] == [
                (first, "before"),
                ("urn:after", "after"),
            ]


def test_every_store_takes_publisher_ids() -> None:
    # The stores above are all there is: a new store must join this test.
    assert {MemoryStore, SqliteStore, RedisStore} == set(Store.__subclasses__())
