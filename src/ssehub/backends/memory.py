"""In-process history: a bounded deque per topic, ids from a time-based origin.

Ids are decimal integers starting just above the wall-clock time in microseconds at start-up.
An id from an earlier run of the process is therefore below this run's origin and is recognised
as history that is gone, rather than being mistaken for an id of this run.

Memory is bounded: at most `history` events per topic, none older than `history_ttl` (dropped
as a topic is touched, and by `sweep`, which the hub runs in the background), at most
`max_topics` topics with history. A topic whose history is empty is forgotten; the highest id
dropped from any forgotten topic is kept, so a resume from before it on a topic with no history
(or with history published since it was forgotten) is answered with a reset rather than a
silent gap.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from ssehub.backends.base import DuplicateId, Store, StoreFull
from ssehub.model import EARLIEST, MAX_TOPICS, Draft, EventId, Record, Replay

__all__ = ["MemoryStore"]

#: Topics a sweep visits per call: the loop runs between calls, so a sweep never stalls it.
SWEEP_SLICE = 5000
#: Publisher-chosen ids remembered at least (more with a longer history): see `_aliases`.
MIN_ALIASES = 10_000


class _TopicHistory:
    __slots__ = ("evicted_upto", "records")

    def __init__(self, evicted_upto: int) -> None:
        self.records: deque[Record] = deque()
        # Highest seq dropped from this topic: a resume from below it would have a gap. A
        # topic created again after it was forgotten starts from the forgotten watermark: what
        # it held before is gone too.
        self.evicted_upto = evicted_upto

    def evict(self, max_count: int, oldest_time: float) -> int:
        """Drop what is over the count or too old; how many were dropped."""
        records = self.records
        dropped = 0
        while records and (len(records) > max_count or records[0].time < oldest_time):
            self.evicted_upto = records.popleft().seq
            dropped += 1
        return dropped

    def after(self, seq: int) -> Iterator[Record]:
        newer: list[Record] = []
        for record in reversed(self.records):
            if record.seq <= seq:
                break
            newer.append(record)
        return reversed(newer)


class MemoryStore(Store):
    """History kept in this process, lost with it."""

    def __init__(
        self,
        history: int = 1000,
        history_ttl: float | None = 3600.0,
        clock: Callable[[], float] = time.time,
        *,
        max_topics: int = 100_000,
    ) -> None:
        if history < 0 or max_topics < 1:
            raise ValueError("history must be >= 0 and max_topics >= 1")
        self._max_count = history
        self._ttl = history_ttl
        self._clock = clock
        self._max_topics = max_topics
        self._origin = int(clock() * 1_000_000)
        self._seq = self._origin
        self._topics: dict[str, _TopicHistory] = {}
        self._retained = 0  # events held, counted once per topic that holds them
        self._forgotten_upto = 0  # highest seq dropped from a topic that was then forgotten
        self._sweep_from: Iterator[str] | None = None
        # Publisher-chosen ids (Draft.alias) -> (seq, time), oldest first; bounded like the
        # history: for history_ttl, at most max(history, MIN_ALIASES) of them. A forgotten id
        # resumes with a reset, like any id whose history is gone.
        self._aliases: dict[str, tuple[int, float]] = {}

    async def latest(self) -> EventId:
        return str(self._seq)

    def append_now(self, drafts: Sequence[Draft]) -> list[Record]:
        now = self._clock()
        oldest = self._oldest_kept(now)
        max_count = self._max_count
        histories = self._topics
        if len(histories) + len(drafts) * MAX_TOPICS > self._max_topics:
            self._check_room(drafts)  # near the bound: count this batch's new topics
        aliases = self._aliases
        if any(draft.alias is not None for draft in drafts):
            self._check_aliases(drafts)  # and forget the ids past the bound
        records = []
        for draft in drafts:
            self._seq = seq = self._seq + 1
            record = Record.from_draft(draft, str(seq), seq, now)
            if draft.alias is not None:
                aliases[draft.alias] = (seq, now)
            records.append(record)
            for topic in draft.topics:
                history = histories.get(topic)
                if history is None:
                    history = histories[topic] = _TopicHistory(self._forgotten_upto)
                # Inline, as this runs for every event: a full history drops one event per
                # event added, and a stale oldest event sends us to `evict` for the rest.
                kept = history.records
                kept.append(record)
                self._retained += 1
                if len(kept) > max_count:
                    history.evicted_upto = kept.popleft().seq
                    self._retained -= 1
                if kept and kept[0].time < oldest:
                    self._retained -= history.evict(max_count, oldest)
                if not kept:  # history 0: nothing is kept, the topic is not remembered
                    self._forget(topic, history)
        return records

    def _check_room(self, drafts: Sequence[Draft]) -> None:
        """StoreFull, before anything is stored, when the batch would pass `max_topics`."""
        new = {topic for draft in drafts for topic in draft.topics} - self._topics.keys()
        if new and len(self._topics) + len(new) > self._max_topics:
            raise StoreFull(
                f"the hub holds the history of {len(self._topics)} topics, its limit "
                f"(--max-topics {self._max_topics}); nothing was published"
            )

    def _check_aliases(self, drafts: Sequence[Draft]) -> None:
        """DuplicateId, before anything is stored, for a publisher id still known or given
        twice in the batch; ids past the bound are forgotten first (oldest first)."""
        aliases = self._aliases
        oldest = self._oldest_kept(self._clock())
        limit = max(self._max_count, MIN_ALIASES)
        while aliases:
            alias, (_, when) = next(iter(aliases.items()))
            if when >= oldest and len(aliases) < limit:
                break
            del aliases[alias]
        chosen = [draft.alias for draft in drafts if draft.alias is not None]
        for alias in chosen:
            if alias in aliases:
                raise DuplicateId(f"id {alias!r} names an event the hub still retains")
        if len(set(chosen)) < len(chosen):
            raise DuplicateId("the same id is given to two events of one batch")

    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        return self.append_now(drafts)

    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        # From EARLIEST, everything retained: a resume from before any event, never a reset.
        alias = self._aliases.get(last_event_id)
        everything = last_event_id == EARLIEST and alias is None
        if alias is not None:
            after = alias[0]
        elif everything:
            after = self._origin
        elif not (last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) < 20):
            return Replay(reset=f"{last_event_id!r} is not an id this hub issued")
        else:
            after = int(last_event_id)
        if after > self._seq:
            return Replay(reset=f"id {after} is newer than any event this hub has published")
        if after < self._origin:
            return Replay(reset=f"id {after} is from before this hub started; its history is gone")
        oldest = self._oldest_kept(self._clock())
        streams = []
        for topic in dict.fromkeys(topics):
            history = self._topics.get(topic)
            if history is not None:
                self._retained -= history.evict(self._max_count, oldest)
                evicted_upto = history.evicted_upto
                if history.records:
                    streams.append(history.after(after))
                else:
                    self._forget(topic, history)
            else:
                evicted_upto = self._forgotten_upto
            if evicted_upto > after and not everything:
                return Replay(
                    reset=f"events after id {after} on topic {topic!r} are no longer retained"
                )
        return Replay(records=_merged(streams), after=after)

    async def history_sizes(self) -> dict[str, int]:
        return {topic: len(history.records) for topic, history in self._topics.items()}

    async def history_totals(self) -> tuple[int, int]:
        return len(self._topics), self._retained

    def sweep(self) -> bool:
        """Drop expired events and forget empty topics, a slice of topics per call; True while
        a sweep is under way (call again), False once it has visited every topic."""
        if self._sweep_from is None:
            self._sweep_from = iter(list(self._topics))
        oldest = self._oldest_kept(self._clock())
        visited = 0
        for topic in itertools.islice(self._sweep_from, SWEEP_SLICE):
            visited += 1
            history = self._topics.get(topic)
            if history is not None:
                self._retained -= history.evict(self._max_count, oldest)
                if not history.records:
                    self._forget(topic, history)
        if visited < SWEEP_SLICE:
            self._sweep_from = None
            return False
        return True

    def _forget(self, topic: str, history: _TopicHistory) -> None:
        del self._topics[topic]
        self._forgotten_upto = max(self._forgotten_upto, history.evicted_upto)

    def _oldest_kept(self, now: float) -> float:
        return now - self._ttl if self._ttl is not None else float("-inf")


def _merged(streams: list[Iterator[Record]]) -> list[Record]:
    """Topic histories merged in publish order; an event published to several of the topics
    is in each history, and is sent once."""
    records: list[Record] = []
    for record in heapq.merge(*streams, key=lambda record: record.seq):
        if not records or records[-1].seq != record.seq:
            records.append(record)
    return records
