"""Fan-out to byte streams: one shared log, a cursor per stream, a sweep in slices.

Writing to a socket costs a system call, and on the hot path that call is nearly all the cost
(measured: ~83% of the hub's CPU with one write per event per subscriber). So the hub does not
write each event to each stream as it is published. Published records go into one log; a *sweep*
visits the streams that have something new, a slice of them at a time, and hands each one
everything after its cursor in a single write. Between slices the event loop runs, so publishers
are served and whatever they publish while a sweep is under way rides along in the same writes,
while an event published to an idle hub still goes out in the first slice. No event waits more
than one sweep (and, under load, the interval below). Publishers are paced
(`FanOut.publishers_wait`, `FanOut.hold`): while a sweep takes several turns of the loop, they
may run a couple of events ahead of it, no further, so the log stays short and so does the wait.

A round over few streams (one slice) takes one turn of the loop, so without a limit every turn
that read a publish would cost every stream a write; under a steady stream of publishes those
writes, not the publishes, were the larger part of the hub's work (benchmarks/bench_fanout.py, 8
publishers and one subscriber: 79k publishes/s with a round per turn, 85-92k with a round per
millisecond). So while events keep coming, such rounds begin at most once per `write_interval`
(1 ms): a round asked for sooner waits for the rest of it, and one write then carries everything
published meanwhile. An event after a quiet spell goes out at the next turn as before, and so does
one a held publisher waits for. A round over more streams than a slice is not delayed: it spans
several turns, and what is published during them rides along anyway, except to the streams it had
already passed. What it owes those goes with the next round, which, when the round just ended let
held publishers go, waits for their next publish (at most the interval), so that the owed events
and the new one share a write: with one sequential publisher and 1000 subscribers, that is one
round per publish round trip instead of two.

Each event's bytes were encoded once (`Record.payload`); streams at the same cursor with the same
topics and the same audience (who may receive private events: `model.Audience`) share one joined
buffer, so a slice computes each distinct buffer once. A private record goes into a buffer only
when that audience may receive it; public records cost that check nothing.

This module does no I/O itself: `write` is whatever the stream's owner gave (a transport's write,
an ASGI response's buffer) and `loop` is what runs the next slice (the event loop's `call_soon`
and `call_later`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from ssehub.model import Audience, Record

__all__ = [
    "RUN_AHEAD",
    "SKIPS_PER_WRITE",
    "SLICE_SIZE",
    "WRITE_INTERVAL",
    "Cancellable",
    "FanOut",
    "Scheduler",
    "Writer",
]

Writer = Callable[[bytes], object]


class Counters(Protocol):
    delivered: int


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The part of an event loop a FanOut uses; asyncio's loops are Schedulers."""

    def call_soon(self, callback: Callable[[], None], /) -> object: ...

    def call_later(self, delay: float, callback: Callable[[], None], /) -> Cancellable: ...


# How many records publishers may append after a round began or ended before they are held (see
# publishers_wait).
RUN_AHEAD = 2
# How many writes a sweep makes per turn of the event loop. Each turn a publish waits for (its
# request, a store's reply) also waits for a slice: smaller slices let publishes in sooner, and
# more of them ride along in each write. Measured back to back (benchmarks/bench_fanout.py, 1000
# subscribers, medians of 3): 16 against 64 gave 592k against 566k deliveries/s in memory, 571k
# against 518k on SQLite, 466k against 398k on Redis, publish rates unchanged.
SLICE_SIZE = 16
# How many streams with nothing to be sent a slice may pass over per write it may make.
SKIPS_PER_WRITE = 4
# Least seconds from the start of one round to the start of the next, for a round over at most
# one slice that no held publisher waits for.
WRITE_INTERVAL = 0.001

_GONE = sys.maxsize  # the cursor of a removed stream: nothing is ever after it


class _Stream:
    __slots__ = ("audience", "audience_key", "cursor", "topics", "write")

    def __init__(
        self, topics: tuple[str, ...], write: Writer, cursor: int, audience: Audience | None
    ) -> None:
        self.topics = topics
        self.write = write
        self.cursor = cursor
        self.audience = audience
        self.audience_key = None if audience is None else audience.key


class FanOut:
    """Delivers records to byte streams, coalescing what each stream has pending."""

    def __init__(
        self,
        counters: Counters,
        loop: Scheduler | None = None,
        *,
        slice_size: int = SLICE_SIZE,
        write_interval: float = WRITE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counters = counters
        # Where rounds run; its owner sets it before the first record is appended.
        self.loop = loop
        self._slice_size = slice_size
        self._write_interval = write_interval
        self._clock = clock
        self._topics: dict[str, dict[Hashable, _Stream]] = {}
        self._log: list[Record] = []
        self._base = 0  # log position of self._log[0]
        self._dirty: set[str] = set()  # topics with records their streams have not been sent
        self._round: tuple[_Stream, ...] = ()
        self._round_position = 0
        self._round_start = 0  # log end when the current round began
        self._hold_mark = 0  # log end when a round last began or ended (see publishers_wait)
        self._round_began = -write_interval  # the clock then
        self._scheduled = False
        self._timer: Cancellable | None = None  # a round waiting for write_interval to pass
        self._ready_first = False  # see let_ready_run_first
        # Held publishers (hold): those of the round under way go on when it ends; the others
        # join the next round when it starts.
        self._round_waiters: list[Callable[[], object]] = []
        self._next_round_waiters: list[Callable[[], object]] = []
        self._released = False  # the last round let held publishers go: see _schedule_round

    @property
    def _end(self) -> int:
        return self._base + len(self._log)

    def add(
        self,
        key: Hashable,
        topics: tuple[str, ...],
        write: Writer,
        audience: Audience | None = None,
    ) -> None:
        """Stream `key` receives every record appended from now on that `audience` may see."""
        stream = _Stream(topics, write, self._end, audience)
        for name in topics:
            self._topics.setdefault(name, {})[key] = stream

    def remove(self, key: Hashable, topics: Sequence[str]) -> bool:
        """Stop sending to `key`; True if it was a stream here."""
        found = False
        for name in topics:
            streams = self._topics.get(name)
            stream = streams.pop(key, None) if streams is not None else None
            if stream is not None:
                stream.cursor = _GONE  # it may still be in the round under way
                found = True
                if not streams:
                    del self._topics[name]
        return found

    def stream_count(self) -> int:
        return len({id(s) for streams in self._topics.values() for s in streams.values()})

    def extend(self, records: Sequence[Record]) -> None:
        """Queue `records` for the streams of their topics; a sweep is scheduled if none is."""
        topics = self._topics
        dirty = self._dirty
        log = self._log
        for record in records:
            touched = False
            for name in record.topics:
                if name in topics:
                    dirty.add(name)
                    touched = True
            if touched:
                log.append(record)
        if not dirty:
            return
        if not self._scheduled:
            self._schedule_round()
        elif self._timer is not None and self._waiting_streams() > self._slice_size:
            # The round waiting for the interval now spans several slices: it goes at once.
            self._timer.cancel()
            self._timer = None
            self._tick_soon()

    def publishers_wait(self) -> bool:
        """True when a publisher that has just published must wait (see `hold`).

        Publishers go on at once while at most RUN_AHEAD records were appended since a round
        last began or ended, or while every round fits in one slice. Beyond that they are held
        until a round has ended: a publisher cannot outrun delivery and grow the log (each
        round carries everything appended before its slices), yet the few events of
        back-to-back publishes still share one write per stream.
        """
        if self._end - self._hold_mark <= RUN_AHEAD:
            return False
        # Only a round spread over several turns of the loop can fall behind: one that fits in a
        # slice goes out whole at the next turn, with everything published before it, so holding
        # publishers for it would only slow them down.
        return len(self._round) > self._slice_size or self._waiting_streams() > self._slice_size

    def _waiting_streams(self) -> int:
        """How many streams the next round visits (a stream of several topics may count twice)."""
        waiting = 0
        for name in self._dirty:
            waiting += len(self._topics.get(name, ()))
        return waiting

    def hold(self, callback: Callable[[], object]) -> None:
        """Call `callback` when the round under way ends, or if none is, the next one.

        For a publisher while `publishers_wait()`: records then wait for a round, so one comes.
        A round under way hands a record appended meanwhile to the streams it has not visited
        yet; the streams it had passed get it in the next round, with whatever the released
        publishers publish next (see `_schedule_round`).
        """
        if self._round:
            self._round_waiters.append(callback)
        else:
            self._next_round_waiters.append(callback)

    def flush(self) -> None:
        """Send everything pending now, without yielding (shutdown, tests)."""
        while self._run_slice():
            pass

    def _schedule_round(self) -> None:
        self._scheduled = True
        if self._released and self._end == self._hold_mark:
            # The round that just ended let held publishers go: what it owes the streams it had
            # passed when their records came waits for their next publish (`extend` then
            # starts the round at once) or the interval, and goes in the same write.
            self._timer = self._scheduler().call_later(self._write_interval, self._tick)
            return
        wait = self._round_began + self._write_interval - self._clock()
        if (
            wait > 0
            and not self._next_round_waiters
            and self._waiting_streams() <= self._slice_size
        ):
            self._timer = self._scheduler().call_later(wait, self._tick)
        else:
            self._tick_soon()

    def _tick_soon(self) -> None:
        self._scheduler().call_soon(self._tick)

    def _scheduler(self) -> Scheduler:
        assert self.loop is not None, "records are appended only once the loop is set"
        return self.loop

    def let_ready_run_first(self) -> None:
        """The next slice waits until the callbacks ready to run now have run.

        A publisher whose store has just answered, or whose request has just been read, waits
        for a turn of the loop, which begins with the slice scheduled before it (16 writes).
        Letting it go first answers it, or sends its write to the store, that much sooner; the
        slice then begins a callback later.
        """
        self._ready_first = True

    def _tick(self) -> None:
        if self._ready_first:  # to the back of the callbacks ready now
            self._ready_first = False
            self._timer = None
            self._tick_soon()
            return
        self._scheduled = False
        self._timer = None
        if self._run_slice() and not self._scheduled:
            if self._round:  # the rest of this round
                self._scheduled = True
                self._tick_soon()
            else:
                self._schedule_round()

    def _run_slice(self) -> bool:
        """Serve one slice of the current round; True while there is more to do."""
        if self._round_position >= len(self._round) and not self._start_round():
            return False
        end = self._end
        base = self._base
        streams = self._round
        position = self._round_position
        # A slice is `slice_size` writes: streams with nothing to be sent (already sent, or
        # only private events their audience may not receive) are passed over without
        # counting, up to SKIPS_PER_WRITE of them per write, so that a round over streams
        # most of which get nothing does not take a turn of the loop per few writes.
        last = min(len(streams), position + self._slice_size * SKIPS_PER_WRITE)
        writes = 0
        buffers: dict[tuple[tuple[str, ...], Hashable, int], tuple[bytes, int]] = {}
        delivered = 0
        while position < last:
            stream = streams[position]
            position += 1
            cursor = max(stream.cursor, base)
            if cursor >= end:
                continue
            stream.cursor = end
            key = (stream.topics, stream.audience_key, cursor)
            buffer = buffers.get(key)
            if buffer is None:
                buffer = buffers[key] = self._join(stream.topics, stream.audience, cursor, end)
            if buffer[1]:
                stream.write(buffer[0])
                delivered += buffer[1]
                writes += 1
                if writes == self._slice_size:
                    break
        self._counters.delivered += delivered
        self._round_position = position
        if position < len(streams):
            return True
        self._round = ()
        self._hold_mark = self._end
        more = bool(self._dirty)
        if not more:
            # Every stream has been sent everything: the log can go.
            self._base = self._round_start = self._end
            self._log.clear()
        if self._round_waiters:
            self._released = True
            waiters, self._round_waiters = self._round_waiters, []
            for callback in waiters:
                callback()  # may append records: they mark topics dirty and schedule a tick
        return more

    def _start_round(self) -> bool:
        self._round_position = 0
        if not self._dirty:
            return False
        # What was in the log when the previous round began reached all its streams in that
        # round (they were all in it); only what came after may still be owed.
        del self._log[: self._round_start - self._base]
        self._base = self._round_start
        self._round_start = self._hold_mark = self._end
        self._round_began = self._clock()
        self._released = False
        streams: dict[int, _Stream] = {}
        for name in self._dirty:
            for stream in self._topics.get(name, {}).values():
                streams[id(stream)] = stream  # a stream of several dirty topics goes once
        self._dirty.clear()
        self._round = tuple(streams.values())
        self._round_waiters, self._next_round_waiters = self._next_round_waiters, []
        return True

    def _join(
        self, topics: tuple[str, ...], audience: Audience | None, cursor: int, end: int
    ) -> tuple[bytes, int]:
        records = self._log[cursor - self._base : end - self._base]
        # A private record's topics are checked against the audience only once it is on a
        # topic of the stream, so public records cost one attribute test.
        if len(topics) == 1:
            name = topics[0]
            payloads = [
                r.payload
                for r in records
                if name in r.topics
                and (not r.private or (audience is not None and audience.may_receive(r.topics)))
            ]
        else:
            wanted = set(topics)
            payloads = [
                r.payload
                for r in records
                if not wanted.isdisjoint(r.topics)
                and (not r.private or (audience is not None and audience.may_receive(r.topics)))
            ]
        return b"".join(payloads), len(payloads)
