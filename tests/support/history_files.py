"""SQLite history files as earlier ssehub versions wrote them, to test their upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def downgrade(path: Path, version: int) -> None:
    """Turn the closed history file at `path` back into schema `version` (1, 2 or 3), with the
    same history: version 3 indexed every event by topic in its own transaction; version 2
    also counted each topic's events in its row; version 1 had no publisher ids either."""
    with sqlite3.connect(path) as db:
        (indexed,) = db.execute("SELECT value FROM meta WHERE name = 'indexed'").fetchone()
        unindexed = db.execute("SELECT seq, topics FROM events WHERE seq > ?", (indexed,))
        db.executemany(
            "INSERT INTO topic_events (topic, seq) VALUES (?, ?)",
            [(topic, seq) for seq, topics in unindexed for topic in set(topics.split("\n"))],
        )
        db.execute("DELETE FROM meta WHERE name = 'indexed'")
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
