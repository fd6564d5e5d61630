"""In-process history: a bounded deque per topic, ids from a time-based origin.

Ids are decimal integers starting just above the wall-clock time in microseconds at start-up.
An id from an earlier run of the process is therefore below this run's origin and is recognised
as history that is gone, rather than being mistaken for an id of this run.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from ssehub.backends.base import Store
from ssehub.model import Draft, EventId, Record, Replay

__all__ = ["MemoryStore"]


class _TopicHistory:
    __slots__ = ("evicted_upto", "records")

    def __init__(self) -> None:
        self.records: deque[Record] = deque()
        # Highest seq dropped from this topic: a resume from below it would have a gap.
        self.evicted_upto = 0

    def evict(self, max_count: int, oldest_time: float) -> None:
        records = self.records
        while records and (len(records) > max_count or records[0].time < oldest_time):
            self.evicted_upto = records.popleft().seq

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
    ) -> None:
        if history < 0:
            raise ValueError("history must be >= 0")
        self._max_count = history
        self._ttl = history_ttl
        self._clock = clock
        self._origin = int(clock() * 1_000_000)
        self._seq = self._origin
        self._topics: dict[str, _TopicHistory] = {}

    async def latest(self) -> EventId:
        return str(self._seq)

    def append_now(self, drafts: Sequence[Draft]) -> list[Record]:
        now = self._clock()
        oldest = self._oldest_kept(now)
        max_count = self._max_count
        histories = self._topics
        records = []
        for draft in drafts:
            self._seq = seq = self._seq + 1
            record = Record.from_draft(draft, str(seq), seq, now)
            records.append(record)
            for topic in draft.topics:
                history = histories.get(topic)
                if history is None:
                    history = histories[topic] = _TopicHistory()
                # Inline, as this runs for every event: a full history drops one event per
                # event added, and a stale oldest event sends us to `evict` for the rest.
                kept = history.records
                kept.append(record)
                if len(kept) > max_count:
                    history.evicted_upto = kept.popleft().seq
                if kept[0].time < oldest:
                    history.evict(max_count, oldest)
        return records

    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        return self.append_now(drafts)

    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        if not (last_event_id.isascii() and last_event_id.isdigit()):
            return Replay(reset=f"{last_event_id!r} is not an id this hub issued")
        after = int(last_event_id)
        if after > self._seq:
            return Replay(reset=f"id {after} is newer than any event this hub has published")
        if after < self._origin:
            return Replay(reset=f"id {after} is from before this hub started; its history is gone")
        oldest = self._oldest_kept(self._clock())
        streams = []
        for topic in dict.fromkeys(topics):
            history = self._topics.get(topic)
            if history is None:
                continue
            history.evict(self._max_count, oldest)
            if history.evicted_upto > after:
                return Replay(
                    reset=f"events after id {after} on topic {topic!r} are no longer retained"
                )
            streams.append(history.after(after))
        records: list[Record] = []
        for record in heapq.merge(*streams, key=lambda record: record.seq):
            # An event published to several subscribed topics is in each history; send it once.
            if not records or records[-1].seq != record.seq:
                records.append(record)
        return Replay(records=records, after=after)

    async def history_sizes(self) -> dict[str, int]:
        return {topic: len(history.records) for topic, history in self._topics.items()}

    def _oldest_kept(self, now: float) -> float:
        return now - self._ttl if self._ttl is not None else float("-inf")
