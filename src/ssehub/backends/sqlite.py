"""History in a SQLite file: it outlives the hub process, for one hub process at a time.

Durability. The file is in WAL mode with `synchronous=NORMAL`: when a transaction's COMMIT
returns, the transaction is in the write-ahead log (in the operating system's page cache), so it
survives the death of the hub process at any moment (SIGKILL, a crash) and is recovered when the
file is next opened. It does not necessarily survive a power loss or an operating-system crash:
that would take `synchronous=FULL`, an fsync per commit. `append` returns, and the API answers
a publish 200, only once the publish's transaction has committed.

Commits. An append to an idle file is written at once, in a transaction of its own, on the
loop's thread (`append_now`: microseconds in WAL mode); the server gives it the whole turn's
publishes as one batch when they come several per turn. Appends that arrive while a transaction
is being written, or while a replay holds the connection on the worker thread, wait and are
written together in one transaction. If a grouped transaction fails, each append
in it is retried alone, so a write SQLite refuses fails only the publish that caused it; an
append that cannot be stored gets `StoreUnavailable` (the API answers 503).

Ids are decimal integers, as in `MemoryStore`: the counter starts at the wall-clock time in
microseconds when the file is created, and is kept in the file. Ids therefore continue above
every earlier id after a restart, and an id issued by an earlier, different file (deleted and
created again) is below this file's origin and answered with a reset rather than mistaken.

History is bounded on disk as in memory: at most `history` events per topic and none older than
`history_ttl` seconds (dropped when events are appended or replayed), at most `max_topics`
topics with history (a publish that would add one more is refused whole with `StoreFull`). For
each topic the file keeps the newest id dropped from it, so a resume from before it is answered
with a reset rather than with a gap. A topic whose history is empty is forgotten (its row
deleted); the newest id dropped from any forgotten topic is kept (`meta.forgotten`) and stands
for the dropped ids of every topic the file does not know, or knows again since. The process
keeps no history in memory, only how many events each topic keeps (counted when the file is
opened), which spares each publish's transaction an update of its topic's row.

Each event is indexed under its topics (`topic_events`) a batch at a time, not in its own
transaction: a transaction that wrote both tables wrote two pages of the write-ahead log, and
each page written costs about as much as the rest of a publish (two `pwrite`s). Events not yet
indexed are listed in memory and indexed before anything reads or drops by topic (a replay, a
topic's excess, an expiry) or once `_INDEX_BATCH` are waiting; `meta.indexed` is the newest id
indexed. The events after it (a crash's, or those `close` leaves) are indexed when the file is
next opened, from `events.topics`.

A topic's oldest events beyond `history` are dropped a chunk at a time: a topic may keep up to
`history // 8` more on disk, and its excess is dropped when it passes that, or before a replay
of it. What the store answers (replays, `history_sizes`, `history_totals`) is exactly the
bound's. Dropping one event per publish would cost each publish's transaction five more
statements and three more pages to write.

Schema::

    meta(name PRIMARY KEY, value)             -- 'origin', 'seq', 'indexed', 'forgotten'

    events(seq INTEGER PRIMARY KEY, time, topics, data, event, retry, refs, private,
           alias UNIQUE)                     -- alias: the publisher's own id, or NULL
    topic_events(topic, seq, PRIMARY KEY (topic, seq)) WITHOUT ROWID   -- up to meta.indexed
    topics(topic PRIMARY KEY, evicted_upto) WITHOUT ROWID   -- the topics with history

The last id issued is the greater of `meta.seq` and the newest event's seq: a transaction
writes `meta.seq` only when its newest event is not on file (dropped at once), which spares the
usual publish a page. `events.topics` is the event's topics joined with newlines (a topic holds
no whitespace), `events.retry` is text (a retry may be larger than SQLite's integers);
an event's encoded bytes are not kept but encoded again from its data, type and retry when it is
replayed (the same bytes; a row is then about half as long, and a page holds twice the events);
`events.refs` counts the topics that still retain the event, which is deleted at zero (its
publisher id with it: an id names one retained event; reusing it is `DuplicateId`). A replay
walks `topic_events` by (topic, seq) for each subscribed topic and reads `events` by seq.

One process only. The file is opened with `locking_mode=EXCLUSIVE`: the hub holds it locked
from `open` to `close`, so a second hub on the same file fails at start ("database is locked"),
as does any other program that opens the file while the hub runs. Several hub processes
(`--workers`) cannot share a SQLite history; use Redis for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple, TypeVar

from ssehub.backends.base import DuplicateId, Store, StoreFull, StoreUnavailable
from ssehub.model import EARLIEST, Draft, EventId, Record, Replay
from ssehub.wire import Event, encode

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

_SCHEMA_VERSION = 4
# Version 2 adds publisher-chosen ids (Draft.alias): one column and its index.
_ALIASES = """
ALTER TABLE events ADD COLUMN alias TEXT;
CREATE UNIQUE INDEX events_alias ON events (alias) WHERE alias IS NOT NULL;
"""
# Version 3 counts each topic's events in memory instead of in its row.
_UNCOUNTED = "ALTER TABLE topics DROP COLUMN retained;"
# Version 4 indexes events by topic a batch at a time (every event of an older file is indexed),
# and encodes an event again when it is replayed instead of keeping its bytes beside its data.
_BATCH_INDEXED = """
ALTER TABLE events DROP COLUMN body;
INSERT INTO meta (name, value)
SELECT 'indexed', max(value, coalesce((SELECT max(seq) FROM events), 0))
FROM meta WHERE name = 'seq'
"""
_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    topics TEXT NOT NULL,
    data TEXT NOT NULL,
    event TEXT NOT NULL,
    retry TEXT,
    refs INTEGER NOT NULL,
    private INTEGER NOT NULL
);
CREATE TABLE topic_events (
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (topic, seq)
) WITHOUT ROWID;
CREATE TABLE topics (
    topic TEXT PRIMARY KEY,
    evicted_upto INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Lists (topics, seqs) are passed to queries as one JSON array, whatever their length (no
# variable limit), and a statement takes the whole list in one step.
_EACH = "SELECT value FROM json_each(?)"
_REPLAY = (
    "SELECT seq, time, topics, data, event, retry, private, alias FROM events "
    "WHERE seq IN ("
    f"SELECT seq FROM topic_events WHERE topic IN ({_EACH}) AND seq > ? AND seq <= ?"
    ") ORDER BY seq"
)
# A topic's dropped events (topic, up to seq): those it alone retained go, the others count one
# topic less (the rest, once the first has deleted those).
_DROPPED = "SELECT seq FROM topic_events WHERE topic = ? AND seq <= ?"
_DELETE_DROPPED = f"DELETE FROM events WHERE seq IN ({_DROPPED}) AND refs <= 1"
_COUNT_DOWN_DROPPED = f"UPDATE events SET refs = refs - 1 WHERE seq IN ({_DROPPED})"
_EXPIRY_CHUNK = 1000
# Events waiting to be indexed by topic (see the module): a batch's rows of one topic fill about
# one page of `topic_events`.
_INDEX_BATCH = 256
_MIN_SQLITE = (3, 35, 0)  # UPSERT ... RETURNING, and json_each built in
_COLUMNS = "seq, time, topics, data, event, refs, private"
# The usual event (no retry, no publisher's id) leaves those columns NULL and binds no None:
# for each None or bool bound, Python's sqlite3 looks for an adapter and formats an
# AttributeError it then discards (measured: 19.5 against 13.1 us to insert 7 rows).
_INSERT_PLAIN = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT = f"INSERT INTO events ({_COLUMNS}, retry, alias) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


@dataclass(slots=True, eq=False)
class _Append:
    """One `append` call waiting for its transaction."""

    drafts: list[Draft]
    future: asyncio.Future[list[Record]]
    sent: bool = False  # handed to the worker: its transaction may commit whatever happens now


class _Counts(NamedTuple):
    """The state kept beside the file (see `SqliteStore._rollback`)."""

    retained: int
    forgotten: int
    surplus: int
    unindexed: list[tuple[str, int]]
    unindexed_count: int


@dataclass(slots=True)
class _Written:
    """What the worker did with one transaction's appends: records or the error, for each."""

    outcomes: list[list[Record] | StoreUnavailable | DuplicateId] = field(default_factory=list)
    last_seq: int = 0
    commits: int = 0


class SqliteStore(Store):
    """History in a SQLite file (see the module's docstring): durable across process crashes."""

    fixed_write_cost = True  # a commit writes a page of the log, whatever it holds

    def __init__(
        self,
        path: str,
        history: int = 1000,
        history_ttl: float | None = 3600.0,
        *,
        max_topics: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if history < 0 or max_topics < 1:
            raise ValueError("history must be >= 0 and max_topics >= 1")
        self.path = path
        self._max_count = history
        self._slack = history // 8  # events a topic may keep past `history` (see the module)
        self._max_topics = max_topics
        self._ttl = history_ttl
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        # All SQLite work runs on this one thread, so the event loop never waits for the disk
        # (a commit, a checkpoint, a large replay or expiry) and the connection has one user.
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # the connection: one thread at a time
        self._connection: sqlite3.Connection | None = None  # by one thread at a time (_lock)
        self._worker_seq = 0  # the last id committed, as the worker sees it
        # Kept beside the file, as committed (changed with the connection; see `_rollback`):
        self._sizes: dict[str, int] = {}  # the events each topic in `topics` keeps on disk
        self._resized_from: dict[str, int] = {}  # sizes before this transaction changed them
        # No event on file is older than this (events are only dropped, or appended with the
        # time of their append): the expiry check's query is needed only when it has passed.
        self._earliest = -math.inf
        self._retained = 0  # the sum of the sizes, for metrics
        self._surplus = 0  # of which past `history`, not yet dropped (see `_resize`)
        self._forgotten = 0  # `meta.forgotten`
        self._unindexed: list[tuple[str, int]] = []  # (topic, seq) after `meta.indexed`
        # Loop-thread state.
        self._origin = 0
        self._committed = 0  # the last id whose transaction committed and was handed back
        self._pending: list[_Append] = []
        self._flush_scheduled = False
        self._writing = False
        self._idle: asyncio.Future[None] | None = None
        self._closing = False
        self._problem: str | None = None
        self._commits = 0

    @property
    def commit_count(self) -> int:
        """Write transactions committed since `open` (appends are grouped: see the module)."""
        return self._commits

    # -- life cycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ssehub-sqlite")
        self._closing = False
        try:
            self._origin, self._committed = await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        self._closing = True
        # Appends already made are written (or fail) before the file is closed.
        while self._pending or self._writing or self._flush_scheduled:
            assert self._loop is not None
            self._idle = self._loop.create_future()
            await self._idle
        await self._run(self._close_sync)
        executor.shutdown(wait=False)
        self._executor = None

    def problem(self) -> str | None:
        return self._problem

    # -- the Store interface --------------------------------------------------------------------

    async def latest(self) -> EventId:
        self._check_open()
        return str(self._committed)

    def append_now(self, drafts: Sequence[Draft]) -> list[Record] | None:
        """Write `drafts` in a transaction of their own now, when the file is idle (nothing
        waiting, nothing being written, the connection free); None otherwise (use `append`).

        A transaction takes microseconds in WAL mode without an fsync; answered here, a publish
        costs one turn of the event loop, as with the memory store, instead of the several that
        a future and its task take (and a sweep under way gives each of those turns a slice).
        The server hands this the whole turn's publishes as one batch when they come several
        per turn, so under load commits stay grouped."""
        if self._executor is None or self._closing or self._pending or self._writing:
            return None
        if not drafts or not self._lock.acquire(blocking=False):
            return None
        try:
            now = self._clock()
            written = self._write_sync([list(drafts)], now, self._oldest_kept(now))
        finally:
            self._lock.release()
        self._commits += written.commits
        self._committed = max(self._committed, written.last_seq)
        [outcome] = written.outcomes
        if isinstance(outcome, DuplicateId):
            raise outcome
        if isinstance(outcome, StoreUnavailable):
            if not isinstance(outcome, StoreFull):  # the store itself works
                self._problem = str(outcome)
            raise outcome
        self._problem = None
        return outcome

    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        self._check_open()
        if self._closing:
            raise StoreUnavailable(f"the history database {self.path} is closing")
        if not drafts:
            return []
        assert self._loop is not None
        request = _Append(list(drafts), self._loop.create_future())
        self._pending.append(request)
        if not (self._flush_scheduled or self._writing):
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        try:
            return await asyncio.shield(request.future)
        except asyncio.CancelledError:
            if not request.sent:
                request.future.cancel()  # `_flush` skips it: nothing is stored
                raise
        # The caller was cancelled (its client went away) after the append was handed to
        # SQLite, which may commit it whatever we do now. Its records must still reach the
        # caller, which delivers them to subscribers; a stored event that live subscribers
        # never got would be a gap nobody can see. The wait is one transaction at most.
        while not request.future.done():
            await asyncio.wait([request.future])
        return request.future.result()

    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        self._check_open()
        # Replay no further than what is committed (the hub, for its part, replays nothing it
        # has not delivered yet: see Hub.catch_up).
        upto = self._committed
        oldest = self._oldest_kept(self._clock())
        return await self._run(
            partial(self._replay_sync, list(dict.fromkeys(topics)), last_event_id, upto, oldest)
        )

    def _resume_point(self, db: sqlite3.Connection, last_event_id: str, upto: int) -> int | str:
        """The seq after which `last_event_id` resumes (a publisher's id or one issued here),
        or why it cannot."""
        alias = db.execute("SELECT seq FROM events WHERE alias = ?", (last_event_id,)).fetchone()
        if alias is not None:
            return int(alias[0])
        if not (last_event_id.isascii() and last_event_id.isdigit()):
            return f"{last_event_id!r} is not an id this hub issued"
        after = int(last_event_id)
        if after > upto:
            return f"id {after} is newer than any event this hub has published"
        if after < self._origin:
            return f"id {after} is from before this hub's history began; its history is gone"
        return after

    async def history_sizes(self) -> dict[str, int]:
        self._check_open()
        return await self._run(self._history_sizes_sync)

    async def history_totals(self) -> tuple[int, int]:
        """The counts kept beside the file: no visit of every topic. (Read while a transaction
        is being written, they may include its changes a moment early.)"""
        self._check_open()
        return len(self._sizes), self._retained - self._surplus

    # -- on the loop thread ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._executor is None:
            raise StoreUnavailable(f"the history database {self.path} is not open")

    async def _run(self, job: Callable[[], _T]) -> _T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._executor, partial(self._locked, job))

    def _locked(self, job: Callable[[], _T]) -> _T:
        with self._lock:
            return job()

    def _oldest_kept(self, now: float) -> float | None:
        return now - self._ttl if self._ttl is not None else None

    def _flush(self) -> None:
        """Write every append waiting into one transaction, on the worker."""
        self._flush_scheduled = False
        requests = [request for request in self._pending if not request.future.done()]
        self._pending = []
        if not requests:
            self._became_idle()
            return
        for request in requests:
            request.sent = True
        self._writing = True
        now = self._clock()
        job = partial(self._write_sync, [r.drafts for r in requests], now, self._oldest_kept(now))
        assert self._loop is not None
        # A turn's transaction takes microseconds (WAL, no fsync), far less than handing it to
        # the worker and back (measured: 9 us against 129 us for five publishes): it is
        # written here, on the loop, unless the worker holds the connection (a replay), in
        # which case the worker writes it next, so the loop never waits.
        if self._lock.acquire(blocking=False):
            written: asyncio.Future[_Written] = self._loop.create_future()
            try:
                written.set_result(job())
            except Exception as error:
                written.set_exception(error)
            finally:
                self._lock.release()
            self._written(requests, written)
            return
        written = self._loop.run_in_executor(self._executor, partial(self._locked, job))
        written.add_done_callback(partial(self._written, requests))

    def _written(self, requests: list[_Append], written: asyncio.Future[_Written]) -> None:
        self._writing = False
        error: BaseException | None
        if written.cancelled():  # the loop is shutting down the executor
            error = StoreUnavailable(f"the history database {self.path} is closing")
        else:
            error = written.exception()
        if error is not None:  # not SQLite refusing (that is an outcome): fail every append
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(error)
        else:
            outcome = written.result()
            self._commits += outcome.commits
            # Before the futures resolve: a replay from now on covers these records.
            self._committed = max(self._committed, outcome.last_seq)
            for request, records in zip(requests, outcome.outcomes, strict=True):
                if isinstance(records, DuplicateId):
                    if not request.future.done():
                        request.future.set_exception(records)
                elif isinstance(records, StoreUnavailable):
                    if not isinstance(records, StoreFull):  # the store itself works
                        self._problem = str(records)
                    if not request.future.done():
                        request.future.set_exception(records)
                else:
                    self._problem = None
                    if not request.future.done():
                        request.future.set_result(records)
        if self._pending:
            self._flush()  # what came meanwhile: one more transaction
        else:
            self._became_idle()

    def _became_idle(self) -> None:
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    # -- with the connection: on the loop thread or the worker, never both (_lock) ------------

    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None
        return self._connection

    def _open_sync(self) -> tuple[int, int]:
        path = self.path
        try:
            # SQLite says only "unable to open database file"; the OS says why.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
        except OSError as error:
            raise StoreUnavailable(
                f"cannot open the history database {path}: {error.strerror or error}"
            ) from None
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreUnavailable(
                f"cannot open the history database {path}: it needs SQLite "
                f"{'.'.join(map(str, _MIN_SQLITE))} or later; Python has {sqlite3.sqlite_version}"
            )
        connection: sqlite3.Connection | None = None
        try:
            # No busy timeout: a file another hub holds is an error at once, not a wait.
            # Used from the loop thread and the worker, never at once (`_lock`).
            connection = sqlite3.connect(
                path, timeout=0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA locking_mode = EXCLUSIVE")
            (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (journal mode is {mode})")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("BEGIN IMMEDIATE")  # takes the exclusive lock, kept until close
            origin, seq = self._prepare(connection)
            self._connection = connection
            self._index_the_rest(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection is not None:
                connection.close()
            self._connection = None
            reason = str(error)
            if "locked" in reason:
                reason += " (another hub is using it: only one process may use a SQLite history)"
            raise StoreUnavailable(f"cannot open the history database {path}: {reason}") from None
        self._worker_seq = seq
        self._earliest = -math.inf  # unknown
        self._sizes = {}
        self._retained = self._surplus = 0
        counted = connection.execute("SELECT topic, count(*) FROM topic_events GROUP BY topic")
        for topic, size in counted:
            self._resize(topic, size)
        self._resized_from.clear()
        forgotten = connection.execute("SELECT value FROM meta WHERE name = 'forgotten'")
        self._forgotten = next((int(value) for (value,) in forgotten), 0)
        return origin, seq

    def _index_the_rest(self, db: sqlite3.Connection) -> None:
        """Index the events the file's last user left unindexed (those after `meta.indexed`: a
        crash leaves them, and so does `close`, which does not index)."""
        (indexed,) = db.execute("SELECT value FROM meta WHERE name = 'indexed'").fetchone()
        self._unindexed = [
            (topic, seq)
            for seq, topics in db.execute(
                "SELECT seq, topics FROM events WHERE seq > ? ORDER BY seq", (indexed,)
            )
            for topic in dict.fromkeys(topics.split("\n"))
        ]
        self._index(db)

    def _prepare(self, connection: sqlite3.Connection) -> tuple[int, int]:
        """Create the schema in a new file; check an existing one. Returns (origin, last id)."""
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version == 0:
            (tables,) = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if tables:
                raise sqlite3.DatabaseError("it is a SQLite file but not an ssehub history")
            origin = int(self._clock() * 1_000_000)
            for statement in (_SCHEMA + _ALIASES).split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("origin", origin), ("seq", origin), ("indexed", origin)],
            )
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            return origin, origin
        if version in (1, 2, 3):  # an older history: upgrade it
            upgrades = (_ALIASES if version == 1 else "") + (_UNCOUNTED if version < 3 else "")
            for statement in (upgrades + _BATCH_INDEXED).split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        elif version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"its history format is version {version}; this ssehub reads {_SCHEMA_VERSION}"
            )
        meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
        (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
        return int(meta["origin"]), max(int(meta["seq"]), newest or 0)  # see `_save_seq`

    def _close_sync(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write_sync(self, batches: list[list[Draft]], now: float, oldest: float | None) -> _Written:
        """One transaction for all `batches`; if it fails, one for each (see the module)."""
        written = _Written()
        try:
            records = self._transaction(batches, now, oldest)
        except (StoreUnavailable, DuplicateId) as error:
            if len(batches) == 1:
                written.outcomes.append(error)
                return written
            for batch in batches:
                try:
                    written.outcomes.extend(self._transaction([batch], now, oldest))
                    written.commits += 1
                except (StoreUnavailable, DuplicateId) as alone:
                    written.outcomes.append(alone)
        else:
            written.outcomes.extend(records)
            written.commits += 1
        written.last_seq = self._worker_seq
        return written

    def _transaction(
        self, batches: list[list[Draft]], now: float, oldest: float | None
    ) -> list[list[Record]]:
        db = self._db()
        seq = self._worker_seq
        results: list[list[Record]] = []
        plain_rows: list[tuple[int, float, str, str, str, int, int]] = []
        full_rows: list[tuple[int, float, str, str, str, int, int, str | None, str | None]] = []
        topic_rows = []
        added: dict[str, int] = {}
        for drafts in batches:
            records = []
            for draft in drafts:
                seq += 1
                records.append(Record.from_draft(draft, str(seq), seq, now))
                unique = dict.fromkeys(draft.topics)
                private = 1 if draft.private else 0  # an int: see `_INSERT_PLAIN`
                row = (
                    seq,
                    now,
                    "\n".join(draft.topics),
                    draft.data,
                    draft.event,
                    len(unique),
                    private,
                )
                if draft.retry is None and draft.alias is None:
                    plain_rows.append(row)
                else:
                    retry = None if draft.retry is None else str(draft.retry)
                    full_rows.append((*row, retry, draft.alias))
                for topic in unique:
                    topic_rows.append((topic, seq))
                    added[topic] = added.get(topic, 0) + 1
            results.append(records)
        committed = self._begin()
        try:
            self._check_room(added)
            self._earliest = min(self._earliest, now)
            db.execute("BEGIN IMMEDIATE")
            if plain_rows:
                db.executemany(_INSERT_PLAIN, plain_rows)
            if full_rows:
                db.executemany(_INSERT, full_rows)
            self._unindexed += topic_rows
            if len(self._unindexed) >= _INDEX_BATCH:
                self._index(db)
            self._evict_excess(db, added)
            if oldest is not None:
                self._expire(db, oldest)
            if self._retained != committed.retained + len(topic_rows):  # it dropped some
                self._save_seq(db, seq)
            self._save_forgotten(db, committed.forgotten)
            db.execute("COMMIT")
        except (sqlite3.Error, OSError, ValueError) as error:
            self._rollback(db, committed)
            if isinstance(error, sqlite3.IntegrityError) and "events.alias" in str(error):
                raise DuplicateId(
                    "an id given names an event the hub still retains (or two of the batch)"
                ) from None
            raise StoreUnavailable(
                f"cannot write to the history database {self.path}: {error}"
            ) from None
        except BaseException:
            self._rollback(db, committed)
            raise
        self._worker_seq = seq
        return results

    def _check_room(self, added: dict[str, int]) -> None:
        """StoreFull, before anything is written, when the batch would pass `max_topics`."""
        known = len(self._sizes)
        if known + len(added) <= self._max_topics:
            return
        new = sum(topic not in self._sizes for topic in added)
        if new and known + new > self._max_topics:
            raise StoreFull(
                f"the hub holds the history of {known} topics, its limit "
                f"(--max-topics {self._max_topics}); nothing was published"
            )

    def _forget(self, db: sqlite3.Connection, topic: str, evicted_upto: int) -> None:
        """Delete the row of a topic whose history is now empty (see the module)."""
        db.execute("DELETE FROM topics WHERE topic = ?", (topic,))
        self._forgotten = max(self._forgotten, evicted_upto)

    def _expiry_due(self, db: sqlite3.Connection, oldest: float) -> bool:
        """Whether the oldest event is older than `oldest`: usually answered without a query,
        from a time no event on file is older than."""
        if self._earliest >= oldest:
            return False
        first = db.execute("SELECT time FROM events ORDER BY seq LIMIT 1").fetchone()
        self._earliest = math.inf if first is None else first[0]
        return self._earliest < oldest

    @staticmethod
    def _save_seq(db: sqlite3.Connection, seq: int) -> None:
        """Keep `seq`, the last id issued, findable after a restart: the newest event on file
        holds it, or else `meta.seq` (see the module)."""
        if db.execute("SELECT 1 FROM events WHERE seq = ?", (seq,)).fetchone() is None:
            db.execute("UPDATE meta SET value = ? WHERE name = 'seq'", (seq,))

    def _save_forgotten(self, db: sqlite3.Connection, before: int) -> None:
        if self._forgotten != before:
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('forgotten', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (self._forgotten,),
            )

    def _begin(self) -> _Counts:
        """The state kept beside the file as committed, before a transaction changes it."""
        self._resized_from.clear()
        unindexed = self._unindexed
        return _Counts(self._retained, self._forgotten, self._surplus, unindexed, len(unindexed))

    def _rollback(self, db: sqlite3.Connection, committed: _Counts) -> None:
        """Undo the transaction, and what it did to the state kept beside the connection."""
        self._retained, self._forgotten, self._surplus, self._unindexed, unindexed = committed
        del self._unindexed[unindexed:]  # `_index` starts a new list: this one only grew
        for topic, size in self._resized_from.items():
            if size:
                self._sizes[topic] = size
            else:
                self._sizes.pop(topic, None)
        self._resized_from.clear()
        if db.in_transaction:
            # SQLite may have rolled back already, as it does after some errors.
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def _resize(self, topic: str, size: int) -> None:
        """Count `topic`'s history as `size` events (0: forgotten)."""
        before = self._sizes.get(topic, 0)
        self._resized_from.setdefault(topic, before)
        if size:
            self._sizes[topic] = size
        else:
            self._sizes.pop(topic, None)
        bound = self._max_count
        self._retained += size - before
        self._surplus += max(size - bound, 0) - max(before - bound, 0)

    def _index(self, db: sqlite3.Connection) -> None:
        """Index the events waiting to be indexed by topic (see the module)."""
        rows = self._unindexed
        if not rows:
            return
        seqs_of: dict[str, list[int]] = {}
        for topic, seq in rows:
            seqs_of.setdefault(topic, []).append(seq)
        db.executemany(  # one row per topic: binding each seq from Python costs more
            f"INSERT INTO topic_events (topic, seq) SELECT ?, value FROM ({_EACH})",
            [(topic, json.dumps(seqs)) for topic, seqs in seqs_of.items()],
        )
        db.execute("UPDATE meta SET value = ? WHERE name = 'indexed'", (rows[-1][1],))
        self._unindexed = []

    def _evict_excess(self, db: sqlite3.Connection, added: dict[str, int]) -> None:
        """Count what `added` adds to each topic, and drop the excess of those past the slack."""
        for topic, count in added.items():
            retained = self._sizes.get(topic, 0) + count
            if retained == count:
                # A new row starts at the forgotten watermark: what a topic held before it was
                # forgotten is gone too.
                db.execute(
                    "INSERT INTO topics (topic, evicted_upto) VALUES (?, ?)",
                    (topic, self._forgotten),
                )
            self._resize(topic, retained)
            if retained > self._max_count + self._slack:
                self._index(db)
                self._trim(db, topic, retained)

    def _trim(self, db: sqlite3.Connection, topic: str, retained: int) -> None:
        """Drop the oldest events of `topic`, which retains `retained`, beyond `history`: delete
        those no other topic retains, and count the others down (see `events.refs`)."""
        excess = retained - self._max_count
        (upto,) = db.execute(
            "SELECT seq FROM topic_events WHERE topic = ? ORDER BY seq LIMIT 1 OFFSET ?",
            (topic, excess - 1),
        ).fetchone()
        deleted = db.execute(_DELETE_DROPPED, (topic, upto)).rowcount
        if deleted < excess:  # some are retained by other topics still
            db.execute(_COUNT_DOWN_DROPPED, (topic, upto))
        db.execute("DELETE FROM topic_events WHERE topic = ? AND seq <= ?", (topic, upto))
        self._resize(topic, retained - excess)
        if excess >= retained:  # history 0: the topic keeps nothing, and is not remembered
            self._forget(db, topic, upto)
        else:
            db.execute(
                "UPDATE topics SET evicted_upto = max(evicted_upto, ?) WHERE topic = ?",
                (upto, topic),
            )

    def _expire(self, db: sqlite3.Connection, oldest: float) -> None:
        """Drop the events older than `oldest` (the run of oldest events, in id order)."""
        if not self._expiry_due(db, oldest):
            return
        self._index(db)
        last = -1
        upto = -1
        newest_of: dict[str, int] = {}
        while True:
            rows = db.execute(
                "SELECT seq, time, topics FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, _EXPIRY_CHUNK),
            ).fetchall()
            for seq, at, topics in rows:
                if at >= oldest:
                    break
                upto = seq
                for topic in topics.split("\n"):
                    newest_of[topic] = seq
            else:
                if len(rows) == _EXPIRY_CHUNK:
                    last = rows[-1][0]
                    continue
            break
        db.execute("DELETE FROM events WHERE seq <= ?", (upto,))
        for topic, seq in newest_of.items():
            dropped = db.execute(
                "DELETE FROM topic_events WHERE topic = ? AND seq <= ?", (topic, upto)
            ).rowcount
            if not dropped:  # the topic's count bound had dropped them already
                continue
            db.execute(
                "UPDATE topics SET evicted_upto = max(evicted_upto, ?) WHERE topic = ?",
                (seq, topic),
            )
            retained = self._sizes[topic] - dropped
            self._resize(topic, retained)
            if retained <= 0:
                self._forget(db, topic, seq)

    def _tidy_now(self, db: sqlite3.Connection, oldest: float | None, topics: list[str]) -> None:
        """Before a replay of `topics`, in a transaction of its own: index the events waiting
        to be, and drop the expired events and those topics' events past `history`, if there
        are any."""
        sizes, bound = self._sizes, self._max_count
        expiry = oldest is not None and self._expiry_due(db, oldest)
        if (
            not expiry
            and not self._unindexed
            and all(sizes.get(topic, 0) <= bound for topic in topics)
        ):
            return
        committed = self._begin()
        try:
            db.execute("BEGIN IMMEDIATE")
            self._index(db)
            if oldest is not None and expiry:
                self._expire(db, oldest)
            for topic in topics:
                retained = sizes.get(topic, 0)
                if retained > bound:
                    self._trim(db, topic, retained)
            self._save_seq(db, self._worker_seq)
            self._save_forgotten(db, committed.forgotten)
            db.execute("COMMIT")
        except BaseException:
            self._rollback(db, committed)
            raise

    def _replay_sync(
        self, topics: list[str], last_event_id: str, upto: int, oldest: float | None
    ) -> Replay:
        db = self._db()
        subscribed = json.dumps(topics)
        try:
            self._tidy_now(db, oldest, topics)
            if last_event_id == EARLIEST:  # every retained event: no gap to check
                after = self._origin
            else:
                resumed = self._resume_point(db, last_event_id, upto)
                if isinstance(resumed, str):
                    return Replay(reset=resumed)
                after = resumed
                gap = self._gap(db, topics, subscribed, after)
                if gap is not None:
                    return Replay(reset=gap)
            rows = db.execute(_REPLAY, (subscribed, after, upto)).fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(
                f"cannot read the history database {self.path}: {error}"
            ) from None
        records = [
            Record.from_draft(
                _stored_draft(names, data, event, retry, private, alias), str(seq), seq, at
            )
            for seq, at, names, data, event, retry, private, alias in rows
        ]
        return Replay(records=records, after=after)

    def _gap(
        self, db: sqlite3.Connection, topics: list[str], subscribed: str, after: int
    ) -> str | None:
        """Why a resume after `after` would miss events of `topics`, if it would."""
        evicted = dict(
            db.execute(
                f"SELECT topic, evicted_upto FROM topics WHERE topic IN ({_EACH})",
                (subscribed,),
            ).fetchall()
        )
        for topic in topics:
            if evicted.get(topic, self._forgotten) > after:
                return f"events after id {after} on topic {topic!r} are no longer retained"
        return None

    def _history_sizes_sync(self) -> dict[str, int]:
        bound = self._max_count
        return {topic: min(size, bound) for topic, size in self._sizes.items()}


def _stored_draft(
    names: str, data: str, event: str, retry: str | None, private: int, alias: str | None
) -> Draft:
    """The draft an `events` row was written from, its bytes encoded again (see the module)."""
    every = None if retry is None else int(retry)
    body = encode(Event(data, event, None, every))
    return Draft(tuple(names.split("\n")), data, event, every, body, bool(private), alias)
