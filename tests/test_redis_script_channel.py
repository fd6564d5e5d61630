"""The Redis store's publish calls, pipelined on one connection (`_ScriptChannel`): each call
gets its own reply, a caller that goes away leaves the connection in step, and a Redis that
stops answering, restarts or forgets the script is handled. Each test runs its own
`redis-server` (they stop, pause or flush it)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
from support.redis_server import RedisServer

from ssehub import Hub
from ssehub.backends import StoreUnavailable, StoreUncertain
from ssehub.backends.redis import RedisStore
from ssehub.model import EARLIEST, Draft, Publication

pytestmark = pytest.mark.anyio


def draft(topic: str, data: str) -> Draft:
    return Publication((topic,), data).draft()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    opened = RedisStore(f"{redis_server.url}?socket_timeout=0.5", history=10_000)
    await opened.open()
    yield opened
    await opened.close()


async def stored(store: RedisStore, topic: str) -> list[tuple[str, str]]:
    """(id, data) of every event `topic` holds, as Redis has them."""
    replay = await store.replay([topic], EARLIEST)
    return [(record.id, record.data) for record in replay.records]


async def test_calls_in_flight_together_each_get_their_own_reply(store: RedisStore) -> None:
    batches = [[draft("t", f"{n}.{i}") for i in range(n % 3 + 1)] for n in range(200)]
    results = await asyncio.gather(*(store.append(batch) for batch in batches))
    answered = [(r.id, r.data) for records in results for r in records]
    assert sorted(answered) == sorted(await stored(store, "t"))
    assert len({event_id for event_id, _ in answered}) == len(answered)


async def test_a_caller_that_goes_away_leaves_the_connection_in_step(store: RedisStore) -> None:
    await store.append([draft("t", "first")])  # connected: a call is written in its first step
    gone = asyncio.ensure_future(store.append([draft("t", "gone")]))
    await asyncio.sleep(0)  # `gone` runs its first step: written, its reply on the way
    gone.cancel()
    [after] = await store.append([draft("t", "after")])
    history = await stored(store, "t")
    assert history[-1] == (after.id, "after")
    assert [data for _, data in history] == ["first", "gone", "after"]  # stored all the same
    assert gone.cancelled()


async def test_a_redis_that_stops_answering_fails_the_call_and_then_serves_again(
    redis_server: RedisServer, store: RedisStore
) -> None:
    await store.append([draft("t", "before")])
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StoreUncertain, match=r"no reply from Redis in 0\.5 s"):
            await store.append([draft("t", "unanswered")])
        assert store.problem() is not None
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    [after] = await store.append([draft("t", "after")])
    assert store.problem() is None
    assert (await stored(store, "t"))[-1] == (after.id, "after")


async def test_a_restarted_redis_is_reached_again(
    redis_server: RedisServer, store: RedisStore
) -> None:
    await store.append([draft("t", "before")])
    redis_server.restart()  # empty: the script is gone too
    # A call racing the news of the restart may fail (nothing stored); the next one reconnects.
    try:
        first = await store.append([draft("t", "first")])
    except StoreUnavailable:
        first = []
    [after] = await store.append([draft("t", "after")])
    assert await stored(store, "t") == [(r.id, r.data) for r in [*first, after]]


async def test_a_flushed_script_is_loaded_again(
    redis_server: RedisServer, store: RedisStore
) -> None:
    await store.append([draft("t", "before")])
    with redis_server.client() as client:
        client.script_flush()
    [after] = await store.append([draft("t", "after")])
    assert [data for _, data in await stored(store, "t")] == ["before", "after"]
    assert (await stored(store, "t"))[-1][0] == after.id


async def test_over_tls_with_a_password_calls_and_the_log_work() -> None:
    """The channel takes over the connection redis-py made (TLS, AUTH): publishes are answered
    and reach a hub through the log, and a wrong password is a clear refusal."""
    with RedisServer(tls=True, password="s3cret") as server:
        async with Hub(backend=server.url) as hub:
            replay = await hub.store.replay(["t"], EARLIEST)
            assert replay.records == []
            ids = [await hub.publish("t", f"m{i}") for i in range(3)]
            replay = await hub.store.replay(["t"], EARLIEST)
            assert [record.id for record in replay.records] == ids
            assert hub.latest == ids[-1]  # delivered here
        wrong = RedisStore(server.url.replace("s3cret", "wrong"))
        with pytest.raises(StoreUnavailable, match="invalid username-password pair"):
            await wrong.open()
        await wrong.close()
