"""Backends by URL: `memory`, `sqlite:///path.db`, `redis://host:port/db` (`--backend`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ssehub.backends.base import Backend
from ssehub.backends.local import LocalBroker
from ssehub.backends.memory import MemoryStore

__all__ = ["backend_from_url"]


def backend_from_url(
    url: str,
    *,
    history: int = 1000,
    history_ttl: float | None = 3600.0,
    max_topics: int = 100_000,
) -> Backend:
    """The backend a URL names; ValueError (one line, for the command line) when it names none.

    - `memory`: history in this process (the default);
    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's spelling): one
      process, history on disk;
    - `redis://[[user]:password@]host:port/db`, `rediss://...` (TLS): any number of hub
      processes on any number of machines share the Redis.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else url.lower()
    if scheme == "memory":
        return Backend(MemoryStore(history, history_ttl, max_topics=max_topics), LocalBroker())
    if scheme == "sqlite":
        from ssehub.backends.sqlite import SqliteStore

        path = url.partition("://")[2].removeprefix("/")
        if not path:
            raise ValueError(f"backend {url!r} names no file: use sqlite:///relative/path.db")
        return Backend(
            SqliteStore(path, history, history_ttl, max_topics=max_topics), LocalBroker()
        )
    if scheme in ("redis", "rediss"):
        try:
            from ssehub.backends.redis import redis_backend
        except ImportError as error:  # redis-py is an extra: pip install 'ssehub[redis]'
            raise ValueError(str(error)) from None
        return redis_backend(url, history=history, history_ttl=history_ttl, max_topics=max_topics)
    raise ValueError(
        f"unknown backend {url!r}: use memory, sqlite:///path.db or redis://host:port/db"
    )
