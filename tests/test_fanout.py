"""The fan-out sweep, sans-IO: a manual scheduler stands in for the event loop."""

from __future__ import annotations

from collections.abc import Callable

from ssehub._fanout import RUN_AHEAD, SKIPS_PER_WRITE, FanOut
from ssehub.model import Draft, Record


class Counters:
    delivered = 0


class Timer:
    def __init__(self, when: float, tick: Callable[[], None]) -> None:
        self.when = when
        self.tick = tick
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """Runs scheduled ticks only when the test says so, like an event loop turning; its clock
    moves only when the test says so too."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], None]] = []
        self.timers: list[Timer] = []
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def call_soon(self, tick: Callable[[], None]) -> None:
        self.ready.append(tick)

    def call_later(self, delay: float, tick: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, tick)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if t.when <= self.now and not t.cancelled]:
            self.timers.remove(timer)
            self.ready.append(timer.tick)

    def turn(self) -> None:
        ready, self.ready = self.ready, []
        for tick in ready:
            tick()

    def run_until_idle(self) -> None:
        while self.ready:
            self.turn()


_seq = 0


def record(*topics: str) -> Record:
    global _seq
    _seq += 1
    body = b"data: %d\n\n" % _seq
    draft = Draft(topics, str(_seq), "message", None, body)
    return Record.from_draft(draft, str(_seq), _seq, 0.0)


def pace(fan_out: FanOut, callback: Callable[[], object]) -> None:
    """What the server does after a publish: go on at once, or be held."""
    if fan_out.publishers_wait():
        fan_out.hold(callback)
    else:
        callback()


def make(slice_size: int = 2, write_interval: float = 0.0) -> tuple[FanOut, Loop, Counters]:
    loop, counters = Loop(), Counters()
    fan_out = FanOut(
        counters, loop, slice_size=slice_size, write_interval=write_interval, clock=loop.time
    )
    return fan_out, loop, counters


def test_nothing_is_written_until_the_loop_turns_then_everything_once() -> None:
    fan_out, loop, counters = make()
    got: list[bytes] = []
    fan_out.add("s", ("t",), got.append)
    first, second = record("t"), record("t")
    fan_out.extend([first])
    fan_out.extend([second])
    assert got == []
    loop.run_until_idle()
    assert got == [first.payload + second.payload]  # coalesced into one write
    assert counters.delivered == 2


def test_events_published_mid_sweep_ride_along_and_order_is_kept() -> None:
    fan_out, loop, _ = make(slice_size=2)
    streams: dict[int, list[bytes]] = {i: [] for i in range(6)}
    for i, chunks in streams.items():
        fan_out.add(i, ("t",), chunks.append)
    records = [record("t")]
    fan_out.extend([records[0]])
    loop.turn()  # first slice: streams 0 and 1 get record 0
    records.append(record("t"))
    fan_out.extend([records[1]])  # published while the sweep is under way
    loop.run_until_idle()
    expected = b"".join(r.payload for r in records)
    for chunks in streams.values():
        assert b"".join(chunks) == expected
    assert [len(chunks) for chunks in streams.values()] == [2, 2, 1, 1, 1, 1]


def test_what_is_ready_may_go_before_the_next_slice() -> None:
    fan_out, loop, _ = make(slice_size=2)
    streams: dict[int, list[bytes]] = {i: [] for i in range(4)}
    for i, chunks in streams.items():
        fan_out.add(i, ("t",), chunks.append)
    fan_out.extend([record("t")])
    loop.turn()  # first slice: streams 0 and 1
    order: list[str] = []
    loop.call_soon(lambda: order.append("publisher"))  # ready after the next slice's tick
    fan_out.let_ready_run_first()
    loop.turn()  # the tick steps back behind the publisher: nothing written in this turn
    assert order == ["publisher"]
    assert [len(chunks) for chunks in streams.values()] == [1, 1, 0, 0]
    loop.turn()  # then the slice, as it would have been
    assert [len(chunks) for chunks in streams.values()] == [1, 1, 1, 1]
    loop.turn()
    assert loop.ready == []  # once only


def test_a_stream_gets_only_its_topics_and_a_shared_event_once() -> None:
    fan_out, loop, _ = make()
    both: list[bytes] = []
    only_b: list[bytes] = []
    fan_out.add("both", ("a", "b"), both.append)
    fan_out.add("b", ("b",), only_b.append)
    on_a, on_ab, on_c, on_b = record("a"), record("a", "b"), record("c"), record("b")
    for r in (on_a, on_ab, on_c, on_b):
        fan_out.extend([r])
    loop.run_until_idle()
    assert b"".join(both) == on_a.payload + on_ab.payload + on_b.payload
    assert b"".join(only_b) == on_ab.payload + on_b.payload


class Granted:
    """An audience that may receive private events of every topic, or of none."""

    def __init__(self, granted: bool) -> None:
        self.key = granted
        self.granted = granted

    def may_receive(self, topics: tuple[str, ...]) -> bool:
        return self.granted


def test_a_slice_is_counted_in_writes_passing_over_streams_that_get_nothing() -> None:
    fan_out, loop, _ = make(slice_size=2)
    granted: list[list[bytes]] = [[], []]
    for n, chunks in enumerate(granted):
        for i in range(SKIPS_PER_WRITE - 1):  # streams whose audience may not receive it
            fan_out.add((n, i), ("t",), lambda chunk: None, Granted(False))
        fan_out.add(n, ("t",), chunks.append, Granted(True))
    fan_out.add("late", ("t",), lambda chunk: None)  # an ungranted stream after the two writes
    draft = Draft(("t",), "secret", "message", None, b"data: secret\n\n", private=True)
    secret = Record.from_draft(draft, "1", 1, 0.0)
    fan_out.extend([secret])
    loop.turn()  # one slice: two writes, the streams that get nothing passed over
    assert granted == [[secret.payload], [secret.payload]]
    assert loop.ready  # the stream after the slice's two writes is left for the next turn
    loop.run_until_idle()
    assert granted == [[secret.payload], [secret.payload]]


def test_a_new_stream_starts_from_now_and_a_removed_one_gets_nothing_more() -> None:
    fan_out, loop, _ = make(slice_size=1)
    old: list[bytes] = []
    gone: list[bytes] = []
    fan_out.add("old", ("t",), old.append)
    fan_out.add("gone", ("t",), gone.append)
    before = record("t")
    fan_out.extend([before])
    new: list[bytes] = []
    fan_out.add("new", ("t",), new.append)
    fan_out.remove("gone", ("t",))
    after = record("t")
    fan_out.extend([after])
    loop.run_until_idle()
    assert b"".join(old) == before.payload + after.payload
    assert b"".join(new) == after.payload
    assert gone == []


def test_the_log_is_emptied_once_everything_is_sent() -> None:
    fan_out, loop, _ = make()
    fan_out.add("s", ("t",), lambda chunk: None)
    for _ in range(100):
        fan_out.extend([record("t")])
        loop.turn()
    loop.run_until_idle()
    assert fan_out._log == []


def test_records_nobody_streams_are_not_kept() -> None:
    fan_out, loop, _ = make()
    fan_out.extend([record("nobody")])
    assert fan_out._log == [] and loop.ready == []


def test_flush_sends_everything_without_the_loop() -> None:
    fan_out, _, _ = make(slice_size=1)
    chunks: list[list[bytes]] = [[] for _ in range(5)]
    for i, got in enumerate(chunks):
        fan_out.add(i, ("t",), got.append)
    r = record("t")
    fan_out.extend([r])
    fan_out.flush()
    assert all(got == [r.payload] for got in chunks)


def test_pace_lets_publishers_go_on_at_once_while_few_records_wait() -> None:
    fan_out, loop, _ = make()
    fan_out.add("s", ("t",), lambda chunk: None)
    fired: list[int] = []
    for n in range(RUN_AHEAD):
        fan_out.extend([record("t")])
        pace(fan_out, lambda n=n: fired.append(n))  # type: ignore[misc]
    fan_out.extend([record("other")])  # no stream of that topic: nothing waits for it
    pace(fan_out, lambda: fired.append(-1))
    assert fired == [*range(RUN_AHEAD), -1]
    assert loop.ready  # the sweep is still to come


def test_pace_holds_a_publisher_until_the_next_round_has_delivered_what_it_published() -> None:
    fan_out, loop, _ = make(slice_size=2)
    streams: dict[int, list[bytes]] = {i: [] for i in range(5)}
    for i, chunks in streams.items():
        fan_out.add(i, ("t",), chunks.append)
    published = [record("t") for _ in range(RUN_AHEAD + 1)]
    released: list[bool] = []

    def everyone_has_everything() -> None:
        released.append(
            all(b"".join(c) == b"".join(r.payload for r in published) for c in streams.values())
        )

    for item in published:
        fan_out.extend([item])
    pace(fan_out, everyone_has_everything)
    assert released == []
    loop.turn()  # the first slice of three
    assert released == []
    loop.run_until_idle()
    assert released == [True]


def test_pace_holds_no_one_while_every_round_fits_in_one_slice() -> None:
    # Such a round goes out whole at the next turn of the loop: publishers cannot outrun it.
    fan_out, loop, _ = make(slice_size=2)
    fan_out.add("a", ("t",), lambda chunk: None)
    fan_out.add("b", ("t",), lambda chunk: None)
    fired: list[int] = []
    for n in range(RUN_AHEAD + 5):
        fan_out.extend([record("t")])
        pace(fan_out, lambda n=n: fired.append(n))  # type: ignore[misc]
    assert fired == list(range(RUN_AHEAD + 5))

    fan_out.add("c", ("t",), lambda chunk: None)  # now a round takes two slices
    fan_out.extend([record("t")])
    pace(fan_out, lambda: fired.append(-1))
    assert fired[-1] != -1
    loop.run_until_idle()
    assert fired[-1] == -1


def test_flush_releases_every_held_publisher() -> None:
    fan_out, _, _ = make(slice_size=1)
    for i in range(3):
        fan_out.add(i, ("t",), lambda chunk: None)
    fired: list[int] = []
    for n in range(RUN_AHEAD + 3):
        fan_out.extend([record("t")])
        pace(fan_out, lambda n=n: fired.append(n))  # type: ignore[misc]
    assert fired == list(range(RUN_AHEAD))
    fan_out.flush()
    assert fired == list(range(RUN_AHEAD + 3))


def test_while_events_keep_coming_rounds_wait_for_the_interval_and_carry_everything() -> None:
    fan_out, loop, _ = make(write_interval=0.001)
    got: list[bytes] = []
    fan_out.add("s", ("t",), got.append)
    first = record("t")
    fan_out.extend([first])
    loop.turn()
    assert got == [first.payload]  # the first event after a quiet spell goes out at once
    meanwhile = [record("t") for _ in range(3)]
    for item in meanwhile:
        fan_out.extend([item])
        loop.turn()
    assert got == [first.payload]  # a round began less than the interval ago
    loop.advance(0.0005)
    loop.run_until_idle()
    assert got == [first.payload]
    loop.advance(0.0005)
    loop.run_until_idle()
    assert got == [first.payload, b"".join(r.payload for r in meanwhile)]  # in one write
    assert loop.timers == []


def test_after_a_quiet_spell_an_event_goes_out_at_the_next_turn() -> None:
    fan_out, loop, _ = make(write_interval=0.001)
    got: list[bytes] = []
    fan_out.add("s", ("t",), got.append)
    for n in range(3):
        item = record("t")
        fan_out.extend([item])
        loop.turn()
        assert got[n:] == [item.payload]
        loop.advance(0.001)
    assert loop.timers == []


def test_a_publisher_held_during_a_round_goes_on_when_it_ends() -> None:
    fan_out, loop, _ = make(slice_size=2, write_interval=0.001)
    for i in range(3):
        fan_out.add(("big", i), ("big",), lambda chunk: None)
    small: list[bytes] = []
    fan_out.add("small", ("small",), small.append)
    fan_out.extend([record("big")])
    loop.turn()  # the first of the big round's two slices
    fired: list[int] = []
    published = [record("small") for _ in range(RUN_AHEAD + 1)]
    for n, item in enumerate(published):
        fan_out.extend([item])
        pace(fan_out, lambda n=n: fired.append(n))  # type: ignore[misc]
    assert fired == list(range(RUN_AHEAD))  # the last is held while the big round is under way
    loop.run_until_idle()  # the clock has not moved
    assert fired == list(range(RUN_AHEAD + 1))
    # The small round waits for the released publisher's next publish, or the interval.
    assert small == []
    loop.advance(0.001)
    loop.run_until_idle()
    assert small == [b"".join(r.payload for r in published)]


def test_what_a_round_owes_the_streams_it_had_passed_goes_with_the_next_publish() -> None:
    fan_out, loop, _ = make(slice_size=2, write_interval=0.001)
    streams: dict[int, list[bytes]] = {i: [] for i in range(4)}
    for i, chunks in streams.items():
        fan_out.add(i, ("t",), chunks.append)
    first = record("t")
    fan_out.extend([first])
    loop.turn()  # the round's first slice: streams 0 and 1
    during = [record("t") for _ in range(RUN_AHEAD + 1)]
    fired: list[int] = []
    for n, item in enumerate(during):
        fan_out.extend([item])
        pace(fan_out, lambda n=n: fired.append(n))  # type: ignore[misc]
    assert fired == list(range(RUN_AHEAD))
    loop.run_until_idle()  # the round ends, its later streams having had everything
    assert fired == list(range(RUN_AHEAD + 1))
    owed = b"".join(r.payload for r in during)
    assert streams[0] == [first.payload]
    assert streams[3] == [first.payload + owed]
    again = record("t")  # the released publisher publishes again
    fan_out.extend([again])
    loop.run_until_idle()  # the clock has not moved
    assert streams[0] == streams[1] == [first.payload, owed + again.payload]
    assert streams[2] == streams[3] == [first.payload + owed, again.payload]
    assert all(timer.cancelled for timer in loop.timers)


def test_a_round_over_more_streams_than_a_slice_does_not_wait_for_the_interval() -> None:
    fan_out, loop, _ = make(slice_size=2, write_interval=0.001)
    streams: dict[int, list[bytes]] = {i: [] for i in range(3)}
    for i, chunks in streams.items():
        fan_out.add(i, ("t",), chunks.append)
    first, second = record("t"), record("t")
    fan_out.extend([first])
    loop.run_until_idle()
    fan_out.extend([second])  # no publisher is held: only the round's size lets it go at once
    loop.run_until_idle()  # the clock has not moved
    assert all(chunks == [first.payload, second.payload] for chunks in streams.values())
    assert loop.timers == []


def test_a_waiting_round_that_grows_past_a_slice_goes_at_once() -> None:
    fan_out, loop, _ = make(slice_size=2, write_interval=0.001)
    small: list[bytes] = []
    fan_out.add("small", ("small",), small.append)
    for i in range(3):
        fan_out.add(("big", i), ("big",), lambda chunk: None)
    fan_out.extend([record("small")])
    loop.run_until_idle()
    waiting = record("small")
    fan_out.extend([waiting])
    loop.run_until_idle()
    assert len(small) == 1 and len(loop.timers) == 1  # a one-stream round waits
    fan_out.extend([record("big")])
    loop.run_until_idle()  # the clock has not moved
    assert small[1:] == [waiting.payload]
    assert [t.cancelled for t in loop.timers] == [True]
