"""The SQLite store: durable history, grouped commits, bounds, resets; and a real hub on it.

The hub-level tests run `ssehub serve --backend sqlite:////abs/path.db` in its own process,
SIGKILL it, and start it again on the same file.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from support.clock import Clock
from support.history_files import downgrade
from support.hub_http import open_position, publish, stream
from support.hub_process import HubProcess

from ssehub.backends import MemoryStore, Store, StoreFull, StoreUnavailable
from ssehub.backends import sqlite as sqlite_module
from ssehub.backends.sqlite import SqliteStore
from ssehub.hub import Hub
from ssehub.model import Draft, Publication, Record
from ssehub.wire import Decoder

pytestmark = pytest.mark.anyio


def draft(topics: str | tuple[str, ...], data: str = "x", **options: object) -> Draft:
    names = (topics,) if isinstance(topics, str) else topics
    return Publication(names, data, **options).draft()  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "history.db"))
    await opened.open()
    yield opened
    await opened.close()


def fail_on_data(path: Path, data: str) -> None:
    """Make SQLite refuse to store any event whose data is `data` (the file must be closed)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events "
            f"WHEN NEW.data = '{data}' BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )
    db.close()


# -- the store, in this process ----------------------------------------------------------------


async def test_appends_in_one_turn_are_one_transaction(store: SqliteStore) -> None:
    drafts = [draft("t", str(i)) for i in range(10)]
    before = store.commit_count
    results = await asyncio.gather(*(store.append([d]) for d in drafts))
    assert store.commit_count == before + 1
    seqs = [records[0].seq for records in results]
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    # Awaited one after the other, each append is a turn of its own: one transaction each.
    for d in drafts[:3]:
        await store.append([d])
    assert store.commit_count == before + 4


async def test_records_are_what_the_draft_makes_and_replay_gives_them_back(
    store: SqliteStore,
) -> None:
    aliased = draft("b", "under the publisher's own id")
    aliased.alias = "publisher-id-1"
    # Rows with a retry or a publisher's id are inserted by a statement of their own: both kinds
    # in one transaction, and private events among them.
    drafts = [
        draft(("a", "b"), "two topics"),
        draft("a", "line one\nline two", event="update", retry=2**70),
        draft("b", "nul \x00 and ünïcödé ✓"),
        aliased,
        draft("a", "for some", private=True),
        draft("a", ""),
    ]
    start = int(await store.latest())
    records = await store.append(drafts)
    for seq, (d, record) in enumerate(zip(drafts, records, strict=True), start + 1):
        assert record == Record.from_draft(d, str(seq), seq, record.time)
    replay = await store.replay(["a", "b"], str(start))
    assert replay.reset is None
    assert replay.after == start
    assert list(replay.records) == records  # every field: id, seq, topics, data, ..., payload
    assert await store.latest() == records[-1].id


async def test_replay_gives_each_event_once_in_order_on_the_subscribed_topics(
    store: SqliteStore,
) -> None:
    start = await store.latest()
    topics = [("a",), ("b",), ("a", "b"), ("c",), ("b", "c"), ("a",)]
    records = [(await store.append([draft(names, str(i))]))[0] for i, names in enumerate(topics)]
    replay = await store.replay(["a", "b", "a"], start)
    assert [r.data for r in replay.records] == ["0", "1", "2", "4", "5"]
    replay = await store.replay(["c"], records[2].id)
    assert [r.data for r in replay.records] == ["3", "4"]
    assert (await store.replay(["a"], records[-1].id)).records == []
    assert (await store.replay(["nobody"], start)).records == []


async def test_history_and_ids_outlive_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "history.db")
    first = SqliteStore(path)
    await first.open()
    origin = await first.latest()
    records = await first.append([draft("t", str(i)) for i in range(5)])
    await first.close()

    second = SqliteStore(path)
    await second.open()
    try:
        assert await second.latest() == records[-1].id
        replay = await second.replay(["t"], records[1].id)
        assert list(replay.records) == records[2:]
        assert [r.data for r in (await second.replay(["t"], origin)).records] == list("01234")
        [later] = await second.append([draft("t", "later")])
        assert later.seq == records[-1].seq + 1
    finally:
        await second.close()


async def test_unknown_and_malformed_ids_are_reset(tmp_path: Path) -> None:
    clock = Clock()
    old = SqliteStore(str(tmp_path / "old.db"), clock=clock)
    await old.open()
    [old_record] = await old.append([draft("t")])
    await old.close()
    clock.now += 60
    store = SqliteStore(str(tmp_path / "new.db"), clock=clock)
    await store.open()
    try:
        [record] = await store.append([draft("t")])
        # An id from another file is below this file's origin: a reset, not a mistaken resume.
        assert (await store.replay(["t"], old_record.id)).reset is not None
        for bad in ("", "abc", "-1", "1.5", "１２", str(record.seq + 1)):
            assert (await store.replay(["t"], bad)).reset is not None, bad
        assert (await store.replay(["t"], record.id)).reset is None
    finally:
        await store.close()


async def test_count_bound_evicts_oldest_per_topic(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "history.db"), history=3)
    await store.open()
    try:
        start = await store.latest()
        a = [(await store.append([draft("a", f"a{i}")]))[0] for i in range(5)]
        [b] = await store.append([draft("b", "b0")])
        assert await store.history_sizes() == {"a": 3, "b": 1}
        assert (await store.replay(["a"], a[0].id)).reset is not None
        assert [r.data for r in (await store.replay(["a"], a[1].id)).records] == ["a2", "a3", "a4"]
        # The evicted events of `a` do not stop a resume on `b` alone.
        assert [r.data for r in (await store.replay(["b"], start)).records] == ["b0"]
        assert (await store.replay(["a", "b"], start)).reset is not None
        assert b.seq > a[-1].seq
    finally:
        await store.close()


def rows_on_file(path: Path, topic: str) -> int:
    """The events `topic` keeps on disk, indexed or not yet (the file must be closed)."""
    with sqlite3.connect(path) as db:
        (indexed,) = db.execute(
            "SELECT count(*) FROM topic_events WHERE topic = ?", (topic,)
        ).fetchone()
        unindexed = db.execute(
            "SELECT topics FROM events WHERE seq > (SELECT value FROM meta WHERE name = 'indexed')"
        ).fetchall()
    db.close()
    return int(indexed) + sum(topic in topics.split("\n") for (topics,) in unindexed)


async def test_the_excess_is_dropped_a_chunk_at_a_time_and_never_answered(tmp_path: Path) -> None:
    """history 16: a topic keeps up to 2 more events on disk, which no answer ever shows."""
    path = tmp_path / "history.db"
    store = SqliteStore(str(path), history=16)
    await store.open()
    records = [(await store.append([draft("t", f"t{i}")]))[0] for i in range(18)]
    assert await store.history_sizes() == {"t": 16}
    assert await store.history_totals() == (1, 16)
    await store.close()
    assert rows_on_file(path, "t") == 18  # nothing dropped yet: 2 past the bound

    store = SqliteStore(str(path), history=16)
    await store.open()
    assert await store.history_totals() == (1, 16)
    assert (await store.replay(["t"], records[0].id)).reset is not None
    replayed = (await store.replay(["t"], records[1].id)).records
    assert [r.data for r in replayed] == [f"t{i}" for i in range(2, 18)]
    await store.close()
    assert rows_on_file(path, "t") == 16  # the replay dropped the excess first

    store = SqliteStore(str(path), history=16)
    await store.open()
    for i in range(18, 21):  # 19 on disk: still within the slack; one more passes it
        await store.append([draft("t", f"t{i}")])
    await store.close()
    assert rows_on_file(path, "t") == 16


async def test_ids_continue_after_restart_when_the_newest_events_are_gone(tmp_path: Path) -> None:
    """The last id is kept in `meta` only when no event on file holds it: here every event has
    expired, and a replay dropped them all."""
    clock = Clock()
    path = str(tmp_path / "history.db")
    store = SqliteStore(path, history_ttl=10.0, clock=clock)
    await store.open()
    [*_, last] = await store.append([draft("t", "a"), draft("t", "b")])
    clock.now += 11
    assert (await store.replay(["t"], last.id)).records == []
    assert await store.history_sizes() == {}
    await store.close()
    store = SqliteStore(path, history_ttl=10.0, clock=clock)
    await store.open()
    assert await store.latest() == last.id
    [after] = await store.append([draft("t", "c")])
    assert after.seq == last.seq + 1
    await store.close()


async def test_ids_continue_after_restart_with_no_history_kept(tmp_path: Path) -> None:
    """History 0: each append's transaction drops its own events, and keeps the last id."""
    path = str(tmp_path / "history.db")
    store = SqliteStore(path, history=0)
    await store.open()
    [*_, last] = await store.append([draft("t", "a"), draft("t", "b")])
    assert await store.history_sizes() == {}
    await store.close()
    store = SqliteStore(path, history=0)
    await store.open()
    try:
        assert await store.latest() == last.id
        [after] = await store.append([draft("t", "c")])
        assert after.seq == last.seq + 1
    finally:
        await store.close()


@pytest.mark.parametrize("version", [2, 3])
async def test_an_older_history_is_upgraded(tmp_path: Path, version: int) -> None:
    """Version 2 counted each topic's events in its row; version 3 indexed every event."""
    path = tmp_path / f"v{version}.db"
    store = SqliteStore(str(path), history=2)
    await store.open()
    [first, *_] = await store.append([draft("a", "a0"), draft(("a", "b"), "ab"), draft("b", "b0")])
    await store.close()
    downgrade(path, version)
    store = SqliteStore(str(path), history=2)
    await store.open()
    try:
        assert await store.history_totals() == (2, 4)
        [a1] = await store.append([draft("a", "a1")])
        assert [r.data for r in (await store.replay(["a", "b"], first.id)).records] == [
            "ab",
            "b0",
            "a1",
        ]
        assert (await store.replay(["a"], str(first.seq - 1))).reset is not None
        assert await store.history_sizes() == {"a": 2, "b": 2}
        assert a1.seq > first.seq + 2
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        columns = [row[1] for row in db.execute("PRAGMA table_info(topics)")]
        assert columns == ["topic", "evicted_upto"]
        assert "body" not in [row[1] for row in db.execute("PRAGMA table_info(events)")]
    db.close()


async def test_an_event_kept_by_another_topic_stays_until_both_drop_it(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "history.db"), history=2)
    await store.open()
    try:
        [both] = await store.append([draft(("a", "b"), "both")])
        start = str(both.seq - 1)
        await store.append([draft("a", "a1"), draft("a", "a2")])
        assert [r.data for r in (await store.replay(["b"], start)).records] == ["both"]
        assert (await store.replay(["a"], start)).reset is not None
        await store.append([draft("b", "b1"), draft("b", "b2")])
        assert (await store.replay(["b"], start)).reset is not None
        assert await store.history_sizes() == {"a": 2, "b": 2}
    finally:
        await store.close()


async def test_an_event_both_its_topics_drop_at_once_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = SqliteStore(str(path), history=1)
    await store.open()
    await store.append([draft(("a", "b"), "both")])
    await store.append([draft("a", "a1"), draft("b", "b1")])
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT data FROM events ORDER BY seq").fetchall() == [("a1",), ("b1",)]
    db.close()


async def test_expired_events_are_not_replayed(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteStore(str(tmp_path / "history.db"), history_ttl=10.0, clock=clock)
    await store.open()
    try:
        start = await store.latest()
        [old] = await store.append([draft("t", "old")])
        clock.now += 6
        [newer] = await store.append([draft("t", "newer")])
        [other] = await store.append([draft("u", "other")])
        clock.now += 5  # `old` is 11 s old, `newer` 5 s
        assert (await store.replay(["t"], start)).reset is not None
        assert [r.data for r in (await store.replay(["t"], old.id)).records] == ["newer"]
        assert await store.history_sizes() == {"t": 1, "u": 1}
        clock.now += 10  # everything has expired, with no append to sweep it
        assert (await store.replay(["t"], old.id)).reset is not None
        assert (await store.replay(["u"], newer.id)).reset is not None
        assert (await store.replay(["u"], other.id)).records == []
        assert await store.history_sizes() == {}  # topics with no history are forgotten
    finally:
        await store.close()


async def test_events_expiring_before_they_are_indexed_leave_the_file(tmp_path: Path) -> None:
    """Expiry in an append's transaction drops events still waiting to be indexed by topic."""
    clock = Clock()
    path = tmp_path / "history.db"
    store = SqliteStore(str(path), history_ttl=10.0, clock=clock)
    await store.open()
    await store.append([draft("t", "old"), draft(("t", "u"), "both")])
    clock.now += 11
    [new] = await store.append([draft("t", "new")])
    assert await store.history_sizes() == {"t": 1}
    await store.close()
    assert (rows_on_file(path, "t"), rows_on_file(path, "u")) == (1, 0)
    store = SqliteStore(str(path), history_ttl=10.0, clock=clock)
    await store.open()
    try:
        assert await store.history_sizes() == {"t": 1}
        assert (await store.replay(["t", "u"], str(new.seq - 1))).records == [new]
    finally:
        await store.close()


async def test_a_refused_index_fails_only_the_append_that_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that fails after its events were listed for indexing (here indexing
    them; in life, a full disk at COMMIT) leaves nothing of them to index later."""
    monkeypatch.setattr(sqlite_module, "_INDEX_BATCH", 1)  # index in each append's transaction
    path = tmp_path / "history.db"
    created = SqliteStore(str(path))
    await created.open()
    await created.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON topic_events WHEN NEW.topic = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )
    db.close()
    store = SqliteStore(str(path))
    await store.open()
    try:
        start = await store.latest()
        with pytest.raises(StoreUnavailable):
            await store.append([draft("refused", "never stored")])
        [fine] = await store.append([draft("t", "fine")])
        assert store.problem() is None
        assert await store.history_sizes() == {"t": 1}
        assert (await store.replay(["t", "refused"], start)).records == [fine]
    finally:
        await store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("history", [3, 17])  # 17: topics may keep 2 more on disk
@pytest.mark.parametrize("index_batch", [256, 4])  # 4: events are indexed between replays too
async def test_same_answers_as_the_memory_store(
    tmp_path: Path, seed: int, history: int, index_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random appends, clock steps, restarts and resumes: SQLite answers as MemoryStore does."""
    monkeypatch.setattr(sqlite_module, "_INDEX_BATCH", index_batch)
    rng = random.Random(seed)
    clock = Clock()
    memory = MemoryStore(history=history, history_ttl=10.0, clock=clock)
    path = str(tmp_path / "history.db")
    sqlite = SqliteStore(path, history, 10.0, clock=clock)
    await sqlite.open()
    try:
        # ids[k][i]: store k's id for the i-th event; index 0 is each store's origin.
        ids: tuple[list[str], list[str]] = ([await memory.latest()], [await sqlite.latest()])
        for step in range(250):
            action = rng.random()
            if action < 0.45:
                batch = [
                    draft(tuple(rng.sample("abc", rng.randint(1, 2))), f"{step}.{n}")
                    for n in range(rng.randint(1, 3))
                ]
                for store, issued in zip((memory, sqlite), ids, strict=True):
                    issued += [record.id for record in await store.append(batch)]
            elif action < 0.6:
                clock.now += rng.choice([0.5, 1, 3, 7]) * 3 / history
            elif action < 0.65:
                await sqlite.close()
                sqlite = SqliteStore(path, history, 10.0, clock=clock)
                await sqlite.open()
            else:
                topics = rng.sample("abc", rng.randint(1, 3))
                point = rng.randrange(len(ids[0]))
                answers = []
                stores: tuple[Store, Store] = (memory, sqlite)
                for store, issued in zip(stores, ids, strict=True):
                    replay = await store.replay(topics, issued[point])
                    positions = [issued.index(record.id) for record in replay.records]
                    answers.append((replay.reset is None, positions))
                assert answers[0] == answers[1], f"step {step}: resume {topics} from #{point}"
            sizes = await sqlite.history_sizes()  # the counters kept for metrics stay exact
            assert await sqlite.history_totals() == (len(sizes), sum(sizes.values()))
            if action < 0.45:  # both have dropped what expired (memory when swept)
                while memory.sweep():
                    pass
                assert sizes == await memory.history_sizes(), f"step {step}"
    finally:
        await sqlite.close()


async def test_an_idle_file_takes_an_append_at_once_and_a_busy_one_queues_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "history.db"))
    await store.open()
    try:
        start = await store.latest()
        records = store.append_now([draft("t", "now")])
        assert records is not None  # committed before it returned
        assert store.commit_count == 1 and await store.latest() == records[0].id
        queued = asyncio.ensure_future(store.append([draft("t", "queued")]))
        await asyncio.sleep(0)  # one turn of the loop: the append is now waiting for its write
        assert store.append_now([draft("t", "would overtake it")]) is None
        await queued
        assert store.append_now([draft("t", "after")]) is not None
        replay = await store.replay(["t"], start)
        assert [record.data for record in replay.records] == ["now", "queued", "after"]
    finally:
        await store.close()


async def test_a_publish_past_max_topics_fails_only_its_append(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "history.db"), max_topics=2)
    await store.open()
    try:
        start = await store.latest()
        # One turn of the loop: one transaction, which the third append makes fail; each is
        # then written alone, and only the one that adds a third topic is refused.
        results = await asyncio.gather(
            store.append([draft("a", "one")]),
            store.append([draft(("b", "c"), "refused whole")]),
            store.append([draft("b", "two")]),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreFull) and "--max-topics 2" in str(results[1])
        assert store.problem() is None  # the file works: health stays green
        assert await store.history_totals() == (2, 2)
        replay = await store.replay(["a", "b", "c"], start)
        assert [record.data for record in replay.records] == ["one", "two"]
    finally:
        await store.close()


async def test_a_refused_write_fails_only_its_append(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    created = SqliteStore(str(path))
    await created.open()
    await created.close()
    fail_on_data(path, "boom")
    store = SqliteStore(str(path))
    await store.open()
    try:
        start = await store.latest()
        results = await asyncio.gather(
            store.append([draft("t", "one")]),
            store.append([draft("t", "two"), draft("t", "boom")]),
            store.append([draft("t", "three")]),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreUnavailable)
        assert str(path) in str(results[1])
        assert store.problem() is None  # the last write went through
        assert [r.data for r in (await store.replay(["t"], start)).records] == ["one", "three"]
        with pytest.raises(StoreUnavailable):
            await store.append([draft("t", "boom")])
        assert store.problem() == "cannot write to the history database " + (
            f"{path}: refused for the test"
        )
        [fine] = await store.append([draft("t", "fine")])
        assert store.problem() is None
        assert await store.latest() == fine.id
        replayed = (await store.replay(["t"], start)).records
        assert [r.data for r in replayed] == ["one", "three", "fine"]
    finally:
        await store.close()
    # Nothing of the refused events was left to index: the file holds the three events only.
    reopened = SqliteStore(str(path))
    await reopened.open()
    try:
        assert await reopened.history_sizes() == {"t": 3}
        assert [r.data for r in (await reopened.replay(["t"], start)).records] == [
            "one",
            "three",
            "fine",
        ]
    finally:
        await reopened.close()


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
@pytest.mark.parametrize("turns", range(6))
async def test_a_cancelled_append_is_stored_only_if_its_caller_gets_the_records(
    store: SqliteStore, turns: int, busy: bool
) -> None:
    # A publisher whose client goes away is cancelled. Busy: an earlier transaction is being
    # written, so the append waits its turn and can still be withdrawn.
    start = await store.latest()
    earlier = asyncio.ensure_future(store.append([draft("t", "earlier")] if busy else []))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task = asyncio.ensure_future(store.append([draft("t", "maybe")]))
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    try:
        records = await task
    except asyncio.CancelledError:
        records = []
    await earlier
    [after] = await store.append([draft("t", "after")])  # the store still works
    stored = [r.data for r in (await store.replay(["t"], start)).records]
    assert stored == [*(["earlier"] if busy else []), *(r.data for r in records), "after"]
    assert after.seq > int(start)


async def test_a_resume_racing_a_publish_gets_the_event_once(tmp_path: Path) -> None:
    # A publisher delivers its event to live subscribers when its append returns. A resume
    # whose replay reads the file after the event's transaction committed, but before the
    # event was delivered, must not replay it too: the resumed stream, live by then, would
    # get it twice. (The hub replays nothing newer than what it has delivered.)
    async with Hub(SqliteStore(str(tmp_path / "history.db"))) as hub:
        start = hub.latest
        chunks: list[bytes] = []
        publishing = asyncio.ensure_future(hub.publish("t", "racing"))
        await asyncio.sleep(0)  # the append is queued, and committed at the loop's next turn
        await hub.resume_stream("k", ("t",), chunks.append, start)
        await publishing
        await hub.publish("t", "after")
        hub.flush()
    decoder = Decoder()
    assert [event.data for chunk in chunks for event in decoder.feed(chunk)] == [
        "racing",
        "after",
    ]


async def test_close_writes_appends_already_made(tmp_path: Path) -> None:
    path = str(tmp_path / "history.db")
    store = SqliteStore(path)
    await store.open()
    start = await store.latest()
    task = asyncio.ensure_future(store.append([draft("t", "last")]))
    await asyncio.sleep(0)  # the append is queued, not yet written
    await store.close()
    [record] = await task
    with pytest.raises(StoreUnavailable):
        await store.append([draft("t", "closed")])
    again = SqliteStore(path)
    await again.open()
    try:
        assert list((await again.replay(["t"], start)).records) == [record]
    finally:
        await again.close()


async def test_files_that_cannot_be_used_are_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "history.db"
    with pytest.raises(StoreUnavailable, match="No such file or directory") as error:
        await SqliteStore(str(missing)).open()
    assert str(missing) in str(error.value)
    assert "\n" not in str(error.value)

    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(StoreUnavailable, match="not a database") as error:
        await SqliteStore(str(not_a_database)).open()
    assert str(not_a_database) in str(error.value)

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    db.close()
    with pytest.raises(StoreUnavailable, match="not an ssehub history"):
        await SqliteStore(str(foreign)).open()
    with sqlite3.connect(foreign) as db:  # and it was left alone
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master")] == ["accounts"]
    db.close()


async def test_a_second_store_on_the_same_file_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreUnavailable, match="locked"):
        await SqliteStore(store.path).open()
    await store.append([draft("t")])  # the first one goes on


# -- a real hub process on a SQLite file --------------------------------------------------------


def backend(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"  # sqlite:////tmp/...: an absolute path


def published_id(url: str, topic: str | list[str], data: str) -> str:
    response = publish(url, topic=topic, data=data)
    assert response.status_code == 200, response.text
    [event_id] = response.json()["ids"]
    assert isinstance(event_id, str)
    return event_id


def killed(hub: HubProcess) -> None:
    hub.process.kill()
    hub.process.wait(timeout=10)


def test_events_survive_sigkill_and_resume_exactly(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path))
    sent: list[tuple[str | list[str], str]] = [
        ("a", "1"),
        ("b", "2"),
        (["a", "b"], "3"),
        ("c", "4"),
        ("a", "5"),
        (["b", "c"], "6"),
    ]
    ids = [published_id(hub.url, topic, data) for topic, data in sent]
    killed(hub)

    hub = start_hub("--backend", backend(tmp_path))
    with stream(hub.url, "a", "b", last_event_id=ids[1]) as s:
        events = s.take(3)
        assert [(e.data, e.id) for e in events] == [("3", ids[2]), ("5", ids[4]), ("6", ids[5])]
        # Nothing else was replayed: the next event is one published now, above every old id.
        new_id = published_id(hub.url, "b", "7")
        assert int(new_id) > max(int(i) for i in ids)
        assert (s.next().data, s.decoder.last_event_id) == ("7", new_id)


def test_every_answered_publish_survives_a_kill_mid_stream(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path))
    with stream(hub.url, "t") as s:
        origin = open_position(s)
    answered: list[str] = []
    refused: list[httpx.Response] = []
    enough = threading.Event()

    def keep_publishing() -> None:
        with httpx.Client(base_url=hub.url, timeout=10) as client:
            for n in range(100_000):
                try:
                    response = client.post("/publish", json={"topic": "t", "data": str(n)})
                except httpx.TransportError:
                    return  # the hub is gone
                if response.status_code != 200:
                    refused.append(response)
                    return
                answered.append(response.json()["ids"][0])
                if len(answered) == 50:
                    enough.set()

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    assert enough.wait(timeout=60)
    killed(hub)  # while publishes keep coming
    publisher.join(timeout=30)
    assert not publisher.is_alive()
    assert refused == []

    hub = start_hub("--backend", backend(tmp_path))
    replayed: list[str] = []
    with stream(hub.url, "t", last_event_id=origin) as s:
        while answered[-1] not in replayed:
            replayed.append(s.next().id or "")
    # Every answered event, once, in order (one more may have been stored unanswered).
    assert replayed == answered


def test_resume_from_beyond_the_retained_history_is_a_reset_after_restart(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path), "--history", "3")
    ids = [published_id(hub.url, "t", str(i)) for i in range(5)]
    killed(hub)

    hub = start_hub("--backend", backend(tmp_path), "--history", "3")
    with stream(hub.url, "t", last_event_id=ids[0]) as s:
        reset = s.next()
        assert reset.event == "reset"
        assert ids[0] in reset.data
    with stream(hub.url, "t", last_event_id=ids[1]) as s:
        assert [e.data for e in s.take(3)] == ["2", "3", "4"]
    with stream(hub.url, "t", last_event_id="not-an-id") as s:
        assert s.next().event == "reset"


def test_a_fresh_subscriber_gets_live_events_after_restart(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path))
    before = published_id(hub.url, "t", "before")
    killed(hub)

    hub = start_hub("--backend", backend(tmp_path))
    with stream(hub.url, "t") as s:
        assert open_position(s) == before  # the position continues from the file
        event_id = published_id(hub.url, "t", "live")
        event = s.next()
        assert (event.data, event.id) == ("live", event_id)
        assert int(event_id) > int(before)


def test_a_refused_write_answers_503_and_publishes_nothing(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path))
    first = published_id(hub.url, "t", "first")
    assert hub.terminate() == 0  # and the file is closed: unlocked
    fail_on_data(tmp_path / "hub.db", "boom")

    hub = start_hub("--backend", backend(tmp_path))
    with stream(hub.url, "t") as s:
        open_position(s)
        response = publish(hub.url, topic="t", data="boom")
        assert response.status_code == 503, response.text
        assert "nothing was published" in response.json()["error"]
        later = published_id(hub.url, "t", "later")
        assert (s.next().data, s.decoder.last_event_id) == ("later", later)
    with stream(hub.url, "t", last_event_id=first) as s:
        assert s.next().data == "later"


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ssehub", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_path_that_cannot_be_opened_exits_1_with_one_line() -> None:
    result = serve_once("--backend", "sqlite:////nonexistent-dir/x.db")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "/nonexistent-dir/x.db" in lines[0]
    assert "No such file or directory" in lines[0]


def test_a_second_hub_on_the_same_file_exits_1_with_one_line(
    start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = start_hub("--backend", backend(tmp_path))
    result = serve_once("--backend", backend(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "locked" in lines[0]
    published_id(hub.url, "t", "still serving")
