"""The Redis backend: several `ssehub serve` nodes on one Redis, over real HTTP.

Every node delivers every event once, in one order; a client resumes on any node; a node that
joins late or loses its process replays from Redis; Redis stopping, restarting empty or being
flushed is explicit (503, health, resets) and delivery resumes by itself.

Each test uses Redis servers of its own (`tests/support/redis_server.py`), or a key prefix of its
own on the module's server, and deletes what it wrote. Tests wait for conditions, never for time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis
from support.hub_process import HubProcess
from support.redis_server import REDIS_SERVER, RedisServer, free_port

from ssehub.backends import StoreUnavailable, backend_from_url
from ssehub.backends.redis import RedisBroker, RedisStore, redis_backend
from ssehub.hub import Hub
from ssehub.model import Publication
from ssehub.wire import Decoder, Event

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

DEADLINE = 20.0  # seconds a condition may take before the test fails


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One private server for the tests that neither stop nor flush it (a prefix each)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> Iterator[str]:
    """The module server's URL with a prefix of this test's own; its keys are deleted after."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{shared_redis.url}?prefix={prefix}"
    client = shared_redis.client()
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A server this test may stop, restart and flush."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    timeout = httpx.Timeout(10.0, read=30.0)
    async with httpx.AsyncClient(timeout=timeout) as client:
        yield client


async def until(condition: Callable[[], object], what: str) -> None:
    """Wait until `condition()` (or what it returns, if awaitable) holds, polling; the test
    fails with `what` after the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def position(event_id: str) -> tuple[int, int]:
    """An id of the Redis store as (epoch, n): the one order of events."""
    epoch, _, n = event_id.partition("-")
    return int(epoch), int(n)


class Listener:
    """An open `/events` stream read in a task: its events, heartbeats, and whether it ended."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        topics: list[str],
        last_event_id: str | None = None,
    ) -> None:
        self.url = url
        self.topics = topics
        self.events: list[Event] = []
        self.heartbeats = 0
        self.status: int | None = None
        self.ended = False
        self.decoder = Decoder(last_event_id or "")
        headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        params = [("topic", topic) for topic in topics]
        self._task = asyncio.ensure_future(self._read(http, params, headers))

    async def _read(
        self, http: httpx.AsyncClient, params: list[tuple[str, str]], headers: dict[str, str]
    ) -> None:
        try:
            async with http.stream(
                "GET", f"{self.url}/events", params=params, headers=headers
            ) as response:
                self.status = response.status_code
                async for chunk in response.aiter_raw():
                    self.heartbeats += chunk.count(b": heartbeat\n")
                    self.events.extend(self.decoder.feed(chunk))
        except httpx.HTTPError:
            pass  # the node went away: the stream has ended
        finally:
            self.ended = True

    @property
    def position(self) -> str:
        """The last event id the stream has set (what a reconnecting client sends)."""
        return self.decoder.last_event_id

    @property
    def messages(self) -> list[Event]:
        return [event for event in self.events if event.event != "reset"]

    async def opened(self) -> Listener:
        """Wait until the hub has told the stream where it stands: it is live from there."""
        await until(lambda: self.position != "" or self.ended, f"a stream on {self.url}")
        assert not self.ended and self.status == 200, self.status
        return self

    async def receive(self, count: int) -> list[Event]:
        await until(lambda: len(self.messages) >= count, f"{count} events on {self.url}")
        return self.messages

    async def receive_until(self, event_id: str) -> list[Event]:
        """Everything up to the event `event_id` (published last: anything doubled before it
        has arrived by then, as events arrive in order)."""
        await until(lambda: any(e.id == event_id for e in self.events), f"{event_id} on {self.url}")
        return self.messages

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def listening(
    http: httpx.AsyncClient, url: str, topics: list[str], last_event_id: str | None = None
) -> AsyncIterator[Listener]:
    listener = Listener(http, url, topics, last_event_id)
    try:
        yield listener
    finally:
        await listener.close()


async def publish(http: httpx.AsyncClient, url: str, topic: str | list[str], data: str) -> str:
    response = await http.post(f"{url}/publish", json={"topic": topic, "data": data})
    assert response.status_code == 200, response.text
    [event_id] = response.json()["ids"]
    return str(event_id)


async def delivered(hub: Hub, event_id: str) -> None:
    """Wait until `hub` has delivered `event_id`: a replay holds what its process delivered."""
    await until(lambda: position(hub.latest) >= position(event_id), f"{event_id} delivered")


async def health_is(http: httpx.AsyncClient, node: str, status: int) -> bool:
    return (await http.get(f"{node}/healthz")).status_code == status


def serve(start_hub: Callable[..., HubProcess], url: str, *args: str) -> HubProcess:
    return start_hub("--backend", url, *args)


# -- several nodes ------------------------------------------------------------------------------


async def test_every_node_delivers_every_event_once_in_one_order(
    start_hub: Callable[..., HubProcess], redis_url: str, http: httpx.AsyncClient
) -> None:
    nodes = [serve(start_hub, redis_url).url for _ in range(3)]
    listeners = [Listener(http, node, topics) for node in nodes for topics in (["a", "b"], ["a"])]
    try:
        for listener in listeners:
            await listener.opened()

        async def publisher(node: str, name: str) -> list[tuple[str, str, str]]:
            sent = []
            for i in range(30):
                topic = "ab"[i % 2]
                data = f"{name}-{i}"
                sent.append((await publish(http, node, topic, data), topic, data))
            return sent

        batches = await asyncio.gather(*(publisher(node, f"n{i}") for i, node in enumerate(nodes)))
        # Last, one event on both topics: whatever arrived twice has arrived before it.
        last = await publish(http, nodes[0], ["a", "b"], "last")
        published = sorted(
            [*(item for batch in batches for item in batch), (last, "ab", "last")],
            key=lambda item: position(item[0]),
        )
        assert len({event_id for event_id, _, _ in published}) == 91
        assert published[-1][0] == last
        everything = [(event_id, data) for event_id, _, data in published]
        on_a = [(event_id, data) for event_id, topic, data in published if "a" in topic]
        for listener in listeners:
            events = await listener.receive_until(last)
            wanted = everything if listener.topics == ["a", "b"] else on_a
            assert [(event.id, event.data) for event in events] == wanted
    finally:
        for listener in listeners:
            await listener.close()


async def test_a_client_of_a_killed_node_resumes_on_another_without_loss_or_duplicate(
    start_hub: Callable[..., HubProcess], redis_url: str, http: httpx.AsyncClient
) -> None:
    doomed, second, third = (serve(start_hub, redis_url) for _ in range(3))
    listeners = [await Listener(http, doomed.url, ["t"]).opened() for _ in range(3)]
    published: list[str] = []
    stop = asyncio.Event()

    async def keep_publishing() -> None:
        while not stop.is_set():
            node = (second, third)[len(published) % 2]
            published.append(await publish(http, node.url, "t", str(len(published))))

    publisher = asyncio.ensure_future(keep_publishing())
    resumed: list[Listener] = []
    try:
        await until(lambda: all(len(x.events) >= 40 for x in listeners), "events before the kill")
        doomed.process.kill()
        doomed.process.wait(timeout=10)
        await until(lambda: all(x.ended for x in listeners), "the killed node's streams to end")
        for i, listener in enumerate(listeners):
            node = (second, third)[i % 2]
            resumed.append(Listener(http, node.url, ["t"], listener.position))
        # Publishing goes on while the clients resume, and for a while after.
        enough = len(published) + 40
        await until(lambda: len(published) >= enough and all(x.events for x in resumed), "more")
        stop.set()
        await publisher
        for before, after in zip(listeners, resumed, strict=True):
            await after.receive_until(published[-1])
            ids = [event.id for event in before.events + after.events]
            assert not [event for event in after.events if event.event == "reset"]
            assert ids == published
    finally:
        publisher.cancel()
        for listener in listeners + resumed:
            await listener.close()


async def test_a_node_that_joins_later_replays_history_it_never_saw(
    start_hub: Callable[..., HubProcess], redis_url: str, http: httpx.AsyncClient
) -> None:
    first = serve(start_hub, redis_url)
    async with listening(http, first.url, ["t", "u"]) as early:
        start = (await early.opened()).position
        ids = [await publish(http, first.url, topic, f"{i}") for i, topic in enumerate("tutut")]
        await early.receive(5)
    late = serve(start_hub, redis_url)
    async with listening(http, late.url, ["t"], start) as resumed:
        await resumed.receive(3)
        assert [event.id for event in resumed.messages] == [ids[0], ids[2], ids[4]]
        after = await publish(http, first.url, "t", "live")
        events = await resumed.receive(4)
        assert [event.id for event in events] == [ids[0], ids[2], ids[4], after]
        assert not [event for event in resumed.events if event.event == "reset"]


async def test_hub_publish_in_another_python_process_reaches_a_serve_node(
    start_hub: Callable[..., HubProcess], redis_url: str, http: httpx.AsyncClient
) -> None:
    node = serve(start_hub, redis_url)
    async with listening(http, node.url, ["t"]) as listener, Hub(redis_url) as hub:
        await listener.opened()
        ids = [
            await hub.publish("t", "one"),
            *await hub.publish_many(
                [Publication(("t",), "two"), Publication(("t", "other"), "three")]
            ),
        ]
        events = await listener.receive(3)
        assert [(event.id, event.data) for event in events] == list(
            zip(ids, ["one", "two", "three"], strict=True)
        )
        # And the other way round: what the node publishes reaches the Python subscriber.
        async with hub.subscribe("t", last_event_id=ids[0]) as subscription:
            sent = await publish(http, node.url, "t", "four")
            got = [await anext(subscription) for _ in range(3)]
        assert [(event.id, event.data) for event in got] == [
            (ids[1], "two"),
            (ids[2], "three"),
            (sent, "four"),
        ]


# -- Redis failures -----------------------------------------------------------------------------


async def test_a_redis_that_stops_answering_gets_a_503_that_says_it_may_be_published(
    start_hub: Callable[..., HubProcess], private_redis: RedisServer, http: httpx.AsyncClient
) -> None:
    """Redis paused (SIGSTOP) after reading the publish: the hub cannot know whether it was
    applied, says so, and when Redis resumes the event reaches subscribers like any other."""
    node = serve(start_hub, f"{private_redis.url}?socket_timeout=0.5").url
    assert private_redis.process is not None
    async with listening(http, node, ["t"]) as listener:
        await listener.opened()
        before = await publish(http, node, "t", "before")
        await listener.receive(1)
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            response = await http.post(f"{node}/publish", json={"topic": "t", "data": "late"})
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        assert response.status_code == 503, response.text
        assert "not known whether this was published" in response.json()["error"]
        after = await publish(http, node, "t", "after")
        events = await listener.receive_until(after)
        assert [event.data for event in events] == ["before", "late", "after"]
        assert events[0].id == before


async def test_a_paused_redis_takes_an_idle_node_out_until_it_answers_again(
    start_hub: Callable[..., HubProcess], private_redis: RedisServer, http: httpx.AsyncClient
) -> None:
    """A node that is only reading the log notices a Redis that holds its connections open but
    answers nothing (SIGSTOP), within the socket timeout, and comes back when it answers."""
    node = serve(start_hub, f"{private_redis.url}?socket_timeout=0.5").url
    assert private_redis.process is not None
    async with listening(http, node, ["t"]) as listener:
        await listener.opened()
        await publish(http, node, "t", "before")
        await listener.receive(1)
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            await until(lambda: health_is(http, node, 503), "the node to report Redis silent")
            health = (await http.get(f"{node}/healthz")).json()
            assert "did not answer: no reply from Redis in 0.5 s" in health["error"], health
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        await until(lambda: health_is(http, node, 200), "the node to be healthy again")
        after = await publish(http, node, "t", "after")
        events = await listener.receive_until(after)
        assert [event.data for event in events] == ["before", "after"]


async def test_redis_down_is_explicit_and_delivery_resumes_after_it_restarts(
    start_hub: Callable[..., HubProcess], private_redis: RedisServer, http: httpx.AsyncClient
) -> None:
    nodes = [serve(start_hub, private_redis.url, "--heartbeat", "0.2").url for _ in range(2)]
    async with listening(http, nodes[0], ["t"]) as one, listening(http, nodes[1], ["t"]) as two:
        await one.opened()
        await two.opened()
        before = await publish(http, nodes[0], "t", "before")
        await one.receive(1)
        await two.receive(1)

        private_redis.stop()
        response = await http.post(f"{nodes[0]}/publish", json={"topic": "t", "data": "lost"})
        assert response.status_code == 503, response.text
        assert "nothing was published" in response.json()["error"]
        for node in nodes:
            await until(lambda: health_is(http, node, 503), "a node to report Redis down")  # noqa: B023
        health = (await http.get(f"{nodes[1]}/healthz")).json()
        assert health["status"] == "unavailable" and "unreachable" in health["error"]
        # Open streams stay open: the heartbeats go on.
        beats = one.heartbeats, two.heartbeats
        await until(
            lambda: one.heartbeats >= beats[0] + 2 and two.heartbeats >= beats[1] + 2,
            "heartbeats while Redis is down",
        )
        assert not one.ended and not two.ended
        # A resume needs the store: the new stream is ended so that its client retries.
        async with listening(http, nodes[1], ["t"], before) as refused:
            await until(lambda: refused.ended, "the resuming stream to end")
            assert refused.messages == []

        private_redis.restart()
        for node in nodes:
            await until(lambda: health_is(http, node, 200), "a node to be healthy")  # noqa: B023
        after = await publish(http, nodes[1], "t", "after")
        for listener in (one, two):
            events = await listener.receive(2)
            assert [(event.id, event.data) for event in events] == [
                (before, "before"),
                (after, "after"),
            ]
        assert after != before

    # Redis came back empty: a resume from before is a reset, not a silent gap.
    async with listening(http, nodes[0], ["t"], before) as resumed:
        await until(lambda: resumed.events, "the reset")
        assert resumed.events[0].event == "reset"
        assert json.loads(resumed.events[0].data)["last_event_id"] == before


async def test_flushed_redis_means_resets_for_old_ids_and_live_delivery_goes_on(
    start_hub: Callable[..., HubProcess], private_redis: RedisServer, http: httpx.AsyncClient
) -> None:
    nodes = [serve(start_hub, private_redis.url).url for _ in range(2)]
    async with listening(http, nodes[0], ["t"]) as one, listening(http, nodes[1], ["t"]) as two:
        await one.opened()
        await two.opened()
        old = [await publish(http, nodes[i % 2], "t", f"old {i}") for i in range(3)]
        await one.receive(3)
        await two.receive(3)

        client = private_redis.client()
        client.flushall()
        client.close()

        new = [await publish(http, nodes[i % 2], "t", f"new {i}") for i in range(3)]
        assert not set(new) & set(old)
        assert min(map(position, new)) > max(map(position, old))
        for listener in (one, two):
            events = await listener.receive(6)
            assert [event.id for event in events] == old + new
            assert not listener.ended

    for node in nodes:
        async with listening(http, node, ["t"], old[1]) as stale:
            await until(lambda: stale.events, "the reset")
            assert stale.events[0].event == "reset"
            assert [event.id for event in stale.events[1:]] == []
        async with listening(http, node, ["t"], new[0]) as fresh:
            await fresh.receive(2)
            assert [event.id for event in fresh.events] == new[1:]


async def test_a_new_history_whose_ids_sort_before_the_old_ones_is_followed(
    start_hub: Callable[..., HubProcess], private_redis: RedisServer, http: httpx.AsyncClient
) -> None:
    """Redis lost its data and a hub that never saw the old history began a new one while the
    Redis clock was behind (here: the state written by hand), so its ids sort before what the
    nodes have read, and reading on from there finds nothing. A node notices when its read of
    the log times out, and follows the new history."""
    nodes = [serve(start_hub, private_redis.url).url for _ in range(2)]
    async with listening(http, nodes[0], ["t"]) as reader:
        await reader.opened()
        old = await publish(http, nodes[1], "t", "old")
        await reader.receive(1)

        client = private_redis.client()
        client.flushall()
        client.hset("ssehub:state", mapping={"epoch": "1", "n": "0", "retained": "0"})
        client.close()

        new = await publish(http, nodes[1], "t", "new")
        assert position(new) == (1, 1) < position(old)
        events = await reader.receive(2)
        assert [(event.id, event.data) for event in events] == [(old, "old"), (new, "new")]


# -- the store on its own -----------------------------------------------------------------------


async def test_replay_merges_topics_in_order_and_sends_each_event_once(redis_url: str) -> None:
    async with Hub(redis_url) as hub:
        origin = hub.latest
        ids = [
            await hub.publish("a", "1"),
            await hub.publish("b", "2"),
            await hub.publish(["a", "b"], "3"),
            await hub.publish("c", "4"),
            await hub.publish(["b", "a"], "5"),
        ]
        await delivered(hub, ids[-1])
        replay = await hub.store.replay(["a", "b", "a"], origin)
        assert replay.reset is None
        assert [(r.id, r.data) for r in replay.records] == [
            (ids[0], "1"),
            (ids[1], "2"),
            (ids[2], "3"),
            (ids[4], "5"),
        ]
        assert [r.seq for r in replay.records] == sorted(r.seq for r in replay.records)
        assert replay.records[2].topics == ("a", "b")
        assert replay.records[2].payload.startswith(f"id: {ids[2]}\ntopic: a\ntopic: b\n".encode())
        replay = await hub.store.replay(["b"], ids[1])
        assert [r.data for r in replay.records] == ["3", "5"]
        replay = await hub.store.replay(["c"], ids[4])
        assert replay.reset is None and replay.records == []


async def test_history_is_bounded_per_topic_and_a_gap_is_a_reset(redis_url: str) -> None:
    async with Hub(redis_url, history=3) as hub:
        origin = hub.latest
        on_t = [await hub.publish("t", str(i)) for i in range(10)]
        on_u = [await hub.publish("u", str(i)) for i in range(2)]
        await delivered(hub, on_u[-1])
        assert await hub.store.history_sizes() == {"t": 3, "u": 2}
        for gone in (origin, on_t[0], on_t[5]):
            replay = await hub.store.replay(["t"], gone)
            assert replay.reset is not None and "no longer retained" in replay.reset
        replay = await hub.store.replay(["t"], on_t[6])
        assert [r.id for r in replay.records] == on_t[7:]
        replay = await hub.store.replay(["u"], origin)
        assert [r.id for r in replay.records] == on_u
        # A subscriber of both topics needs both histories to reach back far enough.
        replay = await hub.store.replay(["u", "t"], on_t[5])
        assert replay.reset is not None and "'t'" in replay.reset


async def test_history_expires_after_its_ttl(redis_url: str) -> None:
    ttl = 2.0
    clock = RedisClock(redis_url)
    async with Hub(redis_url, history_ttl=ttl) as hub:
        origin = hub.latest
        old = await hub.publish("t", "old")
        await delivered(hub, old)
        published = (await hub.store.replay(["t"], origin)).records[0].time
        await until(lambda: clock.now() > published + ttl / 2, "half the ttl")
        newer = await hub.publish("t", "newer")
        await delivered(hub, newer)
        replay = await hub.store.replay(["t"], origin)
        assert [r.data for r in replay.records] == ["old", "newer"]

        async def expired(last_event_id: str) -> bool:
            return (await hub.store.replay(["t"], last_event_id)).reset is not None

        await until(lambda: expired(origin), "the old event to expire")
        replay = await hub.store.replay(["t"], old)
        assert replay.reset is None and [r.id for r in replay.records] == [newer]
        # Once every event has expired, so has the topic's key in Redis.
        await until(lambda: not clock.exists("topic:t"), "the history key to expire")
        replay = await hub.store.replay(["t"], newer)
        assert replay.reset is None and replay.records == []
        replay = await hub.store.replay(["t"], old)
        assert replay.reset is not None and "no longer retained" in replay.reset
        # A new history for the topic still knows that "newer" came before it, and is gone.
        latest = await hub.publish("t", "latest")
        await delivered(hub, latest)
        replay = await hub.store.replay(["t"], newer)
        assert replay.reset is None and [r.data for r in replay.records] == ["latest"]
        replay = await hub.store.replay(["t"], old)
        assert replay.reset is not None and "no longer retained" in replay.reset
    clock.close()


class RedisClock:
    """The module server's clock, and its keys under the test's prefix."""

    def __init__(self, url: str) -> None:
        self.prefix = url.partition("?prefix=")[2]
        self.client = redis.Redis.from_url(url.partition("?")[0])

    def now(self) -> float:
        seconds, micros = self.client.time()
        return float(seconds + micros / 1_000_000)

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(f"{self.prefix}:{key}"))

    def close(self) -> None:
        self.client.close()


async def test_ids_from_no_history_held_are_resets(redis_url: str) -> None:
    async with Hub(redis_url) as hub:
        first = await hub.publish("t", "x")
        epoch, n = position(first)
        for wrong, why in [
            ("", "is not an id"),
            ("12", "is not an id"),
            ("abc-1", "is not an id"),
            (f"{epoch}-{n + 1000}", "newer than any event"),
            (f"{epoch - 1}-{n}", "earlier history"),
        ]:
            replay = await hub.store.replay(["t"], wrong)
            assert replay.reset is not None and why in replay.reset, (wrong, replay.reset)


async def test_an_unreachable_redis_raises_store_unavailable_in_one_line() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://user:s3cret@127.0.0.1:{port}/0")
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    message = str(caught.value)
    assert "unreachable" in message and f"127.0.0.1:{port}" in message
    assert "s3cret" not in message and "\n" not in message
    assert store.problem() == message
    with pytest.raises(StoreUnavailable):
        await store.append([Publication(("t",), "x").draft()])
    await store.close()


def test_urls_name_the_server_and_the_prefix() -> None:
    backend = backend_from_url("redis://127.0.0.1:6379/2?prefix=myapp&log_length=50")
    assert isinstance(backend.store, RedisStore) and isinstance(backend.broker, RedisBroker)
    config = backend.store.config
    assert (config.prefix, config.log_length, config.state) == ("myapp", 50, "myapp:state")
    assert "prefix" not in config.url and config.url.endswith("/2")
    default = redis_backend("rediss://:pw@example.com:6380/0").store
    assert isinstance(default, RedisStore)
    assert default.config.prefix == "ssehub" and "pw" not in default.config.where
    for bad in (
        "redis://127.0.0.1:port/0",
        "redis://127.0.0.1:6379/notadb",
        "redis://127.0.0.1:6379/0?prefix=",
        "redis://127.0.0.1:6379/0?log_length=0",
    ):
        with pytest.raises(ValueError):
            backend_from_url(bad)
