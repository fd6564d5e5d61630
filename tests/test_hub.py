"""The hub core without any server: ids, history bounds, replay, reset, fan-out, subscriptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest
from support.clock import Clock

from ssehub.backends import MemoryStore
from ssehub.hub import Hub, SlowSubscriberError
from ssehub.model import Publication, Replay
from ssehub.wire import Decoder, Event

pytestmark = pytest.mark.anyio


def decode(chunks: Sequence[bytes]) -> list[Event]:
    decoder = Decoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


async def test_ids_are_unique_and_increasing_across_topics() -> None:
    async with Hub() as hub:
        ids = [await hub.publish(topic, str(i)) for i, topic in enumerate("abab")]
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert len(set(ids)) == 4


async def test_invalid_publications_publish_nothing() -> None:
    async with Hub() as hub:
        before = hub.latest
        for bad in (
            Publication(("ok",), "x", event="a\nb"),
            Publication(("ok",), "x", event="a\rb"),
            Publication(("has space",), "x"),
            Publication(("",), "x"),
            Publication((), "x"),
            Publication(("ok",), "x", retry=-1),
        ):
            with pytest.raises(ValueError):
                await hub.publish_many([Publication(("ok",), "fine"), bad])
        assert hub.latest == before
        assert await hub.store.history_sizes() == {}


async def test_history_is_bounded_by_count() -> None:
    async with Hub(history=3) as hub:
        for i in range(10):
            await hub.publish("t", str(i))
        assert await hub.store.history_sizes() == {"t": 3}


async def test_history_is_bounded_by_age_and_expiry_means_reset() -> None:
    clock = Clock()
    async with Hub(MemoryStore(history=100, history_ttl=60, clock=clock)) as hub:
        first = await hub.publish("t", "old")
        clock.now += 30
        await hub.publish("t", "newer")
        clock.now += 31  # "old" is now past its time to live
        replay = await hub.store.replay(["t"], str(int(first) - 1))
        assert replay.reset is not None and "no longer retained" in replay.reset
        replay = await hub.store.replay(["t"], first)
        assert [r.data for r in replay.records] == ["newer"]


async def test_replay_merges_topics_in_publish_order_without_duplicates() -> None:
    async with Hub() as hub:
        start = hub.latest
        await hub.publish("a", "1")
        await hub.publish(["a", "b"], "2")
        await hub.publish("b", "3")
        await hub.publish("c", "not subscribed")
        await hub.publish("a", "4")
        replay = await hub.store.replay(["a", "b"], start)
    assert [r.data for r in replay.records] == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [("banana", "not an id"), ("1", "before this hub started"), ("99999999999999999", "newer")],
)
async def test_unknown_ids_get_an_explicit_reset(last_event_id: str, reason: str) -> None:
    async with Hub() as hub:
        await hub.publish("t", "x")
        async with hub.subscribe("t", last_event_id=last_event_id) as sub:
            reset = await anext(sub)
            await hub.publish("t", "live")
            live = await anext(sub)
    assert reset.event == "reset"
    body = json.loads(reset.data)
    assert reason in body["reason"] and body["last_event_id"] == last_event_id
    assert live.data == "live" and int(live.id or 0) > int(reset.id or 0)


async def test_subscription_resumes_from_last_event_id() -> None:
    async with Hub() as hub:
        ids = [await hub.publish("t", str(i)) for i in range(5)]
        async with hub.subscribe("t", last_event_id=ids[1]) as sub:
            await hub.publish("t", "5")
            got = [await anext(sub) for _ in range(4)]
    assert [e.data for e in got] == ["2", "3", "4", "5"]
    assert got[0].id == ids[2]


async def test_multi_topic_subscriber_gets_a_multi_topic_event_once() -> None:
    async with Hub() as hub:
        async with hub.subscribe(["a", "b"]) as sub:
            await hub.publish(["a", "b"], "both")
            await hub.publish("b", "next")
            assert [(await anext(sub)).data for _ in range(2)] == ["both", "next"]
        assert hub.stats.delivered == 2


async def test_fan_out_hands_the_same_bytes_to_every_writer() -> None:
    async with Hub() as hub:
        received: dict[int, list[bytes]] = {i: [] for i in range(3)}
        for i in range(3):
            hub.open_stream(i, ("t",), received[i].append)
        await hub.publish("t", "line1\nline2", event="update")
        hub.flush()
        payloads = [chunks[-1] for chunks in received.values()]
    assert payloads[0] is payloads[1] is payloads[2]
    [event] = decode(received[0])
    assert (event.event, event.data) == ("update", "line1\nline2")


async def test_fresh_stream_is_told_the_current_position() -> None:
    async with Hub() as hub:
        await hub.publish("t", "before")
        chunks: list[bytes] = []
        hub.open_stream("k", ("t",), chunks.append)
        decoder = Decoder()
        assert decoder.feed(b"".join(chunks)) == []
        assert decoder.last_event_id == str(hub.latest)


class SlowReplayStore(MemoryStore):
    """Replay waits (as a networked store would) until the test lets it answer."""

    def __init__(self) -> None:
        super().__init__()
        self.replay_started = asyncio.Event()
        self.may_answer = asyncio.Event()

    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        self.replay_started.set()
        await self.may_answer.wait()
        return await super().replay(topics, last_event_id)


async def test_events_published_during_replay_are_neither_lost_nor_doubled() -> None:
    store = SlowReplayStore()
    async with Hub(store) as hub:
        ids = [await hub.publish("t", str(i)) for i in range(3)]
        chunks: list[bytes] = []
        resume = asyncio.ensure_future(hub.resume_stream("k", ("t",), chunks.append, ids[0]))
        await store.replay_started.wait()
        for i in range(3, 6):  # published while the replay is in flight
            await hub.publish("t", str(i))
        store.may_answer.set()
        await resume
        await hub.publish("t", "6")
        hub.flush()
    assert [e.data for e in decode(chunks)] == ["1", "2", "3", "4", "5", "6"]


async def test_slow_python_subscriber_is_closed_with_an_error() -> None:
    async with Hub(max_pending=5) as hub:
        async with hub.subscribe("t") as sub:
            for i in range(10):
                await hub.publish("t", str(i))
            got = [(await anext(sub)).data for _ in range(5)]
            with pytest.raises(SlowSubscriberError):
                await anext(sub)
        assert got == ["0", "1", "2", "3", "4"]
        assert hub.stats.slow_dropped == 1
        assert hub.subscriber_count() == 0


class Granted:
    """An audience that may receive private events on the topics it names."""

    def __init__(self, *topics: str) -> None:
        self.topics = frozenset(topics)

    @property
    def key(self) -> frozenset[str]:
        return self.topics

    def may_receive(self, topics: tuple[str, ...]) -> bool:
        return not self.topics.isdisjoint(topics)


async def test_private_events_reach_only_the_audiences_that_may_receive_them_live() -> None:
    async with Hub() as hub:
        granted: list[bytes] = []
        other: list[bytes] = []
        anonymous: list[bytes] = []
        also_granted: list[bytes] = []
        hub.open_stream("granted", ("t",), granted.append, Granted("t"))
        hub.open_stream("also", ("t",), also_granted.append, Granted("t"))
        hub.open_stream("other", ("t",), other.append, Granted("elsewhere"))
        hub.open_stream("anonymous", ("t",), anonymous.append)
        async with (
            hub.subscribe("t", audience=Granted("t")) as granted_sub,
            hub.subscribe("t") as anonymous_sub,
        ):
            await hub.publish("t", "secret", private=True)
            await hub.publish("t", "public")
            hub.flush()
            assert [(await anext(granted_sub)).data for _ in range(2)] == ["secret", "public"]
            assert (await anext(anonymous_sub)).data == "public"
    assert [e.data for e in decode(granted)] == ["secret", "public"]
    assert [e.data for e in decode(other)] == ["public"]
    assert [e.data for e in decode(anonymous)] == ["public"]
    # Streams with the same audience share the same bytes: one join for both.
    assert granted[-1] is also_granted[-1]


async def test_private_events_reach_only_the_audiences_that_may_receive_them_on_replay() -> None:
    async with Hub() as hub:
        start = hub.latest
        await hub.publish(["t", "u"], "secret", private=True)
        await hub.publish("t", "public")
        got: dict[str, list[str]] = {}
        for name, audience in (("granted", Granted("u")), ("other", Granted("x")), ("anon", None)):
            chunks: list[bytes] = []
            await hub.resume_stream(name, ("t",), chunks.append, start, audience)
            got[name] = [e.data for e in decode(chunks)]
            async with hub.subscribe("t", last_event_id=start, audience=audience) as sub:
                assert [(await anext(sub)).data for _ in got[name]] == got[name]
    assert got == {"granted": ["secret", "public"], "other": ["public"], "anon": ["public"]}
