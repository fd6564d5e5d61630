"""The hub: topics, ids, history, replay, and fan-out to subscribers.

Fan-out is the hot path. Each event is encoded once (by the store, into `Record.payload`) and
byte streams get those bytes through `ssehub._fanout`, which coalesces what each stream has
pending into one write per sweep: no task, no coroutine, no queue per subscriber per event.

Two kinds of subscriber exist:
- *writers* take bytes (server streams, ASGI responses): `write(payload)`;
- *readers* take records (Python subscriptions, and any stream while it is catching up).

A stream that resumes from a Last-Event-ID is first registered as a reader that buffers live
records, then handed what it missed, then whatever arrived meanwhile with a higher id, and only
then switched to a live writer — all without an `await` between the last flush and the switch, so
nothing is lost or doubled even when the store's replay has to wait for I/O.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ssehub._fanout import WRITE_INTERVAL, Cancellable, FanOut, Writer
from ssehub.backends._url import backend_from_url
from ssehub.backends.base import Backend, Store
from ssehub.backends.local import LocalBroker
from ssehub.model import (
    Audience,
    Draft,
    EventId,
    Publication,
    Record,
    Replay,
    draft_all,
    reset_record,
    selection,
    topic_tuple,
    visible,
)
from ssehub.wire import Event

if TYPE_CHECKING:
    from ssehub.asgi import HubApp, HubStreamResponse
    from ssehub.wsgi import SyncSubscription

__all__ = ["Hub", "HubStats", "SlowSubscriberError", "Subscription"]

Reader = Callable[[Record], None]

#: Where readers of a subscription with topic selectors (`model.TopicSelector`) are kept: no
#: topic is named "", and every record is offered to them.
_SELECTED = ""
#: The longest Last-Event-ID handed to a store; a longer one gets a reset at once.
MAX_EVENT_ID = 256
#: Seconds between two background sweeps of expired history (`Store.sweep`).
SWEEP_INTERVAL = 5.0
#: Bytes of replay written at a time to a stream that resumes with flow control (`drain`).
REPLAY_SLICE = 256 * 1024


def _size(records: Sequence[Record]) -> int:
    return sum(len(record.payload) for record in records)


def _slices(records: Sequence[Record]) -> Iterator[list[Record]]:
    """`records` in runs of about REPLAY_SLICE bytes (at least one record each)."""
    part: list[Record] = []
    size = 0
    for record in records:
        part.append(record)
        size += len(record.payload)
        if size >= REPLAY_SLICE:
            yield part
            part, size = [], 0
    if part:
        yield part


@dataclass(slots=True)
class HubStats:
    published: int = 0
    delivered: int = 0
    replays: int = 0
    resets: int = 0
    slow_dropped: int = 0


class SlowSubscriberError(Exception):
    """Raised to a subscription that fell further behind than the hub allows."""


class Hub:
    """Publish to topics; subscribe with replay. Usable with or without the HTTP server.

    `backend`: where history lives and how events reach every hub process — a URL (`memory`,
    `sqlite:///path.db`, `redis://host:port/db`: see `ssehub.backends.backend_from_url`), a
    `Backend` (a store and a broker), or a `Store` alone (delivered within this process). History
    is bounded by `history` and `history_ttl` (count, seconds per topic) and the topics with
    history by `max_topics`, where a URL names the store.
    `write_interval`: while events keep coming, a hub with few streams (one sweep slice) sweeps
    them at most once per this many seconds, one write each carrying everything published
    meanwhile, unless a publisher is held waiting for the sweep; an event after a quiet spell goes
    out at once, and larger sweeps never wait (see `ssehub._fanout`).
    """

    def __init__(
        self,
        backend: Backend | Store | str = "memory",
        *,
        history: int = 1000,
        history_ttl: float | None = 3600.0,
        max_topics: int = 100_000,
        max_pending: int = 10_000,
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        if write_interval < 0:
            raise ValueError("write_interval must be >= 0")
        if isinstance(backend, str):
            backend = backend_from_url(
                backend, history=history, history_ttl=history_ttl, max_topics=max_topics
            )
        elif isinstance(backend, Store):
            backend = Backend(backend, LocalBroker())
        self.backend = backend
        self.store = backend.store
        self._broker = backend.broker
        self._published = backend.broker.published  # bound once: it runs for every publish
        self._broker_follows_store = backend.broker.follows_store
        self.stats = HubStats()
        self.max_pending = max_pending
        self._readers: dict[str, dict[Hashable, tuple[Reader, Audience | None]]] = {}
        self._fan_out = FanOut(self.stats, write_interval=write_interval)
        self._latest: EventId = ""
        # The seq of the newest record delivered here (None before the first): a replay never
        # hands out a record newer than that, which is still on its way to delivery and would
        # then reach a resumed stream twice.
        self._delivered_seq: int | None = None
        self._started = False
        self._sweeper: Cancellable | None = None
        self._awaiting_store = 0  # publishers waiting for the store's answer

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._started:
            # Sweeps run on the loop that started the hub. (Asking asyncio for the running loop
            # at each sweep would cost a system call, getpid, on Python 3.11.)
            self._fan_out.loop = asyncio.get_running_loop()
            await self.store.open()
            self._latest = await self.store.latest()
            await self._broker.start(self.store, self._deliver)
            self._started = True
            self._sweeper = self._fan_out.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        """Drop expired history and forget empty topics in the background, a slice per turn
        of the loop, so memory comes back even from topics nobody touches again."""
        loop = self._fan_out.loop
        assert loop is not None
        more = self.store.sweep()
        self._sweeper = loop.call_later(0 if more else SWEEP_INTERVAL, self._sweep)

    async def close(self) -> None:
        if self._started:
            self._started = False
            if self._sweeper is not None:
                self._sweeper.cancel()
            await self._broker.close()
            await self.store.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def latest(self) -> EventId:
        """The id of the newest event this hub has delivered."""
        return self._latest

    def problem(self) -> str | None:
        """Why this hub cannot serve publishes now (for health checks), or None."""
        if not self._started:
            return "the hub is not running"
        return self.store.problem()

    # -- publishing ---------------------------------------------------------------------------

    async def publish(
        self,
        topics: str | Iterable[str],
        data: str,
        event: str = "message",
        retry: int | None = None,
        *,
        private: bool = False,
    ) -> EventId:
        """Publish one event; returns its id. Raises ValueError for invalid input.

        A `private` event reaches only subscribers whose audience may receive one of its topics.
        """
        publication = Publication(topic_tuple(topics), data, event, retry, private)
        [event_id] = await self.publish_many([publication])
        return event_id

    async def publish_many(self, publications: Iterable[Publication]) -> list[EventId]:
        """Publish a batch, all or nothing: every publication is validated before any is sent.

        Raises InvalidPublication (a ValueError) for invalid input.
        """
        return await self.publish_drafts(draft_all(publications))

    async def publish_drafts(self, drafts: Sequence[Draft]) -> list[EventId]:
        """`publish_many` of publications already drafted (validated and encoded)."""
        await self.start()
        records = self.store.append_now(drafts)
        if records is None:
            # While this publisher waits, the records the store hands over are its own, or may
            # be: it goes on before the next slice of their sweep (see `_deliver`).
            self._awaiting_store += 1
            try:
                if self._broker_follows_store:
                    # What is stored reaches the subscribers through the store whatever becomes
                    # of this publisher: no task to shield it (each would cost a turn).
                    records = await self.store.append(drafts)
                else:
                    # Shielded: a publisher cancelled while the store writes (its client went
                    # away) must not leave a stored event undelivered to the live subscribers.
                    records = await asyncio.shield(self._append_and_deliver(drafts))
            finally:
                self._awaiting_store -= 1
        else:
            self._published(records)
        return [record.id for record in records]

    async def _append_and_deliver(self, drafts: Sequence[Draft]) -> list[Record]:
        records = await self.store.append(drafts)
        self._published(records)
        return records

    def publish_drafts_now(self, drafts: Sequence[Draft]) -> list[EventId] | None:
        """Publish drafts without awaiting when the store allows it (the server's path).

        Returns None, having published nothing, when the store needs I/O: call
        `publish_drafts`.
        """
        if not self._started:
            return None
        records = self.store.append_now(drafts)
        if records is None:
            return None
        self._published(records)
        return [record.id for record in records]

    def _deliver(self, records: Sequence[Record]) -> None:
        if not records:
            return
        stats = self.stats
        stats.published += len(records)
        self._latest = records[-1].id
        self._delivered_seq = records[-1].seq
        self._fan_out.extend(records)
        if self._awaiting_store:
            self._fan_out.let_ready_run_first()
        if self._readers:
            for record in records:
                for read, audience in self._readers_of(record.topics):
                    if record.private and (
                        audience is None or not audience.may_receive(record.topics)
                    ):
                        continue
                    read(record)
                    stats.delivered += 1

    def _readers_of(self, names: Sequence[str]) -> tuple[tuple[Reader, Audience | None], ...]:
        # A reader of several of the record's topics is one key in the merged dict: one copy.
        readers: dict[Hashable, tuple[Reader, Audience | None]] = {}
        for name in names:
            readers.update(self._readers.get(name, ()))
        readers.update(self._readers.get(_SELECTED, ()))
        return tuple(readers.values())

    def let_ready_run_first(self) -> None:
        """What is ready to run now (a request's task just created) goes before the next
        slice of a sweep under way: see `FanOut.let_ready_run_first`."""
        self._fan_out.let_ready_run_first()

    def flush(self) -> None:
        """Hand every pending event to its streams now (before shutdown, in tests)."""
        self._fan_out.flush()

    def publishers_wait(self) -> bool:
        """True when a publisher that has just published must wait (see `hold_publisher`)."""
        return self._fan_out.publishers_wait()

    def hold_publisher(self, callback: Callable[[], object]) -> None:
        """While `publishers_wait()`: call `callback` when the publisher may go on.

        The server answers a publish only then, so publishers cannot run more than a couple of
        events ahead of delivery: fast publishers slow down to the rate subscribers are served.
        """
        self._fan_out.hold(callback)

    # -- subscribing --------------------------------------------------------------------------

    def add_writer(
        self,
        key: Hashable,
        topics: Sequence[str],
        write: Writer,
        audience: Audience | None = None,
    ) -> None:
        """Send `key` every event on `topics` from now on that `audience` may see (public
        events, and the private ones it may receive), as bytes, coalesced per sweep.

        With topic selectors among `topics`, each matching record is written as it comes (a
        reader): the fan-out joins streams by topic name, which a pattern has not.
        """
        if selection(topics) is None:
            self._fan_out.add(key, tuple(topics), write, audience)
        else:

            def write_record(record: Record) -> None:
                write(record.payload)

            self.add_reader(key, topics, write_record, audience)

    def add_reader(
        self,
        key: Hashable,
        topics: Sequence[str],
        read: Reader,
        audience: Audience | None = None,
    ) -> None:
        """Call `read` with every record on `topics` from now on that `audience` may see."""
        selected = selection(topics)
        if selected is not None:

            def read_selected(record: Record) -> None:
                if selected(record.topics):
                    read(record)

            self._readers.setdefault(_SELECTED, {})[key] = (read_selected, audience)
            return
        for name in topics:
            self._readers.setdefault(name, {})[key] = (read, audience)

    def remove(self, key: Hashable, topics: Sequence[str]) -> None:
        """Unsubscribe `key` (writer or reader) from `topics`; unknown keys are ignored."""
        if selection(topics) is not None:
            topics = (_SELECTED,)
        self._fan_out.remove(key, topics)
        for name in topics:
            readers = self._readers.get(name)
            if readers is not None and readers.pop(key, None) is not None and not readers:
                del self._readers[name]

    def subscriber_count(self) -> int:
        readers = {key for keyed in self._readers.values() for key in keyed}
        return len(readers) + self._fan_out.stream_count()

    async def catch_up(
        self,
        key: Hashable,
        topics: Sequence[str],
        last_event_id: str,
        send: Callable[[list[Record]], None],
        audience: Audience | None = None,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Send `key` what it missed after `last_event_id`, or a reset record, via `send`:
        the records `audience` may see (`model.visible`), live or replayed alike.

        Live records that arrive meanwhile are buffered and sent after the replay, minus any
        the replay already held. With `drain`, the replay is sent in slices of about
        `REPLAY_SLICE` bytes, each once `drain()` says the reader took the one before: a
        client that reads keeps up with any backlog at its own pace, and its buffer never holds
        more than a slice or two (live records wait here meanwhile, at most `max_pending`).
        On return nothing is registered for `key`: the caller registers it live at once (no
        await in between), so nothing is lost or doubled.
        """
        pending: list[Record] = []
        self.add_reader(key, topics, pending.append, audience)
        position = self._latest
        try:
            if len(last_event_id) > MAX_EVENT_ID:  # no store issues such ids: spare it the work
                replay = Replay(reset=f"an id of {len(last_event_id)} characters is no id")
            else:
                replay = await self.replay(topics, last_event_id)
            if replay.reset is not None:
                self.stats.resets += 1
                missed = [reset_record(replay.reset, last_event_id, position)]
                covered = -1  # every live record follows a reset
            else:
                self.stats.replays += 1
                stored = replay.records
                bound = self._delivered_seq
                if stored and bound is not None and stored[-1].seq > bound:
                    # Stored, not yet delivered: it comes live, into `pending`.
                    stored = [record for record in stored if record.seq <= bound]
                missed = visible(stored, audience)
                covered = stored[-1].seq if stored else replay.after
            # Paced: the replay, then what arrived meanwhile, a slice at a time while there is
            # more than a slice; the rest goes below, with no await before going live.
            while drain is not None and _size(missed) > REPLAY_SLICE:
                for part in _slices(missed):
                    send(part)
                    await drain()
                    if len(pending) > self.max_pending:
                        raise SlowSubscriberError("fell too far behind while catching up")
                covered = max(covered, missed[-1].seq)
                missed = [record for record in pending if record.seq > covered]
                pending.clear()
        finally:
            self.remove(key, topics)
        missed += [record for record in pending if record.seq > covered]
        if missed:
            send(missed)

    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        """What the store holds after `last_event_id` on `topics` (or why it cannot say); with
        topic selectors among them, on every topic with history that they select (the store
        is asked which it holds)."""
        selected = selection(topics)
        if selected is not None:
            names = [topic for topic in topics if type(topic) is str]
            held = await self.store.history_sizes()
            topics = names + [name for name in held if selected((name,))]
        return await self.store.replay(topics, last_event_id)

    def open_stream(
        self,
        key: Hashable,
        topics: Sequence[str],
        write: Writer,
        audience: Audience | None = None,
    ) -> None:
        """Attach a fresh byte stream: live events from now on.

        The stream is first told the current position (`id:` with no data dispatches nothing but
        sets the browser's last event id), so a client that reconnects before any event arrives
        still resumes exactly where it left off.
        """
        self.add_writer(key, topics, write, audience)
        write(b"id: %s\n\n" % self._latest.encode())

    async def resume_stream(
        self,
        key: Hashable,
        topics: Sequence[str],
        write: Writer,
        last_event_id: str,
        audience: Audience | None = None,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Attach a resuming byte stream: what it missed (or a reset), then live events.

        `drain()`, when given, returns once the stream's reader has taken what was written:
        the replay is then written as the reader reads it (see `catch_up`).
        """

        def send(records: list[Record]) -> None:
            write(b"".join(record.payload for record in records))

        await self.catch_up(key, topics, last_event_id, send, audience, drain)
        self.add_writer(key, topics, write, audience)

    def subscribe(
        self,
        topics: str | Iterable[str],
        last_event_id: str | None = None,
        audience: Audience | None = None,
    ) -> Subscription:
        """`async with hub.subscribe(["orders"]) as sub: async for event in sub: ...`

        Private events arrive only when `audience` may receive them (`ssehub.auth.Grants`).
        """
        return Subscription(self, topic_tuple(topics), last_event_id, audience)

    # -- embedding: lazy facades; the work is in ssehub.asgi and ssehub.wsgi -------------------

    def asgi_app(self, **options: Any) -> HubApp:
        """The hub's HTTP API as an ASGI app: `app.mount("/sse", hub.asgi_app())`."""
        from ssehub.asgi import HubApp

        return HubApp(self, **options)

    def stream(
        self, request: object, topics: str | Iterable[str], **options: Any
    ) -> HubStreamResponse:
        """A response streaming `topics` from an app's own route, with replay and reset."""
        from ssehub.asgi import hub_stream

        return hub_stream(self, request, topics, **options)

    def subscribe_sync(
        self, topics: str | Iterable[str], last_event_id: str | None = None, **options: Any
    ) -> SyncSubscription:
        """`subscribe` for sync code (Flask, Django) while the hub runs on another thread."""
        from ssehub.wsgi import subscribe_sync

        return subscribe_sync(self, topics, last_event_id, **options)

    def publish_sync(
        self, topics: str | Iterable[str], data: str, event: str = "message", **options: Any
    ) -> EventId:
        """`publish` for sync code while the hub runs on another thread."""
        from ssehub.wsgi import publish_sync

        return publish_sync(self, topics, data, event, **options)


class Subscription:
    """A Python-side subscription: an async iterator of `Event`s with replay."""

    def __init__(
        self,
        hub: Hub,
        topics: tuple[str, ...],
        last_event_id: str | None,
        audience: Audience | None = None,
    ) -> None:
        self.hub = hub
        self.topics = topics
        self.last_event_id = last_event_id
        self.audience = audience
        self._queue: deque[Record] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False

    async def __aenter__(self) -> Subscription:
        await self.hub.start()
        if self.last_event_id is not None:
            await self.hub.catch_up(
                self, self.topics, self.last_event_id, self._queue.extend, self.audience
            )
        self.hub.add_reader(self, self.topics, self._push, self.audience)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the subscription; iteration ends once queued events are consumed."""
        if not self._closed:
            self._closed = True
            self.hub.remove(self, self.topics)
            self._wake()

    def _push(self, record: Record) -> None:
        if len(self._queue) >= self.hub.max_pending:
            self.hub.stats.slow_dropped += 1
            self._error = SlowSubscriberError(
                f"subscriber fell {len(self._queue)} events behind; resume from its last id"
            )
            self.close()
            return
        self._queue.append(record)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        record = self._queue.popleft()
        self.last_event_id = record.id
        return record.to_event()
