"""SQLite history files as earlier ssehub versions wrote them, to test their upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ssehub.wire import Event, encode

# The events table of versions 1 to 3, which kept each event's encoded bytes (`body`).
_V3_EVENTS = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    topics TEXT NOT NULL,
    data TEXT NOT NULL,
    event TEXT NOT NULL,
    retry TEXT,
    body BLOB NOT NULL,
    refs INTEGER NOT NULL,
    private INTEGER NOT NULL,
    alias TEXT
)
"""


def downgrade(path: Path, version: int) -> None:
    """Turn the closed history file at `path` back into schema `version` (1, 2 or 3), with the
    same history: version 3 indexed every event by topic in its own transaction and kept its
    encoded bytes; version 2 also counted each topic's events in its row; version 1 had no
    publisher ids either."""
    with sqlite3.connect(path) as db:
        (indexed,) = db.execute("SELECT value FROM meta WHERE name = 'indexed'").fetchone()
        unindexed = db.execute("SELECT seq, topics FROM events WHERE seq > ?", (indexed,))
        db.executemany(
            "INSERT INTO topic_events (topic, seq) VALUES (?, ?)",
            [(topic, seq) for seq, topics in unindexed for topic in set(topics.split("\n"))],
        )
        db.execute("DELETE FROM meta WHERE name = 'indexed'")
        rows = db.execute(
            "SELECT seq, time, topics, data, event, retry, refs, private, alias FROM events"
        ).fetchall()
        db.execute("DROP INDEX events_alias")
        db.execute("DROP TABLE events")
        db.execute(_V3_EVENTS)
        db.execute("CREATE UNIQUE INDEX events_alias ON events (alias) WHERE alias IS NOT NULL")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (seq, at, topics, data, event, retry, _body(data, event, retry), *rest)
                for seq, at, topics, data, event, retry, *rest in rows
            ],
        )
        if version <= 2:
            db.execute("ALTER TABLE topics ADD COLUMN retained INTEGER NOT NULL DEFAULT 0")
            db.execute(
                "UPDATE topics SET retained = "
                "(SELECT count(*) FROM topic_events WHERE topic_events.topic = topics.topic)"
            )
        if version == 1:
            db.execute("DROP INDEX events_alias")
            db.execute("ALTER TABLE events DROP COLUMN alias")
        db.execute(f"PRAGMA user_version = {version}")
    db.close()


def _body(data: str, event: str, retry: str | None) -> bytes:
    return encode(Event(data, event, None, None if retry is None else int(retry)))
