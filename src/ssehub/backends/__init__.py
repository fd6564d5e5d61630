"""Stores (memory, SQLite, Redis) and brokers (in-process, Redis): where history lives and how
events travel. `backend_from_url` picks both from one URL."""

from ssehub.backends._url import backend_from_url
from ssehub.backends.base import (
    Backend,
    Broker,
    DuplicateId,
    RecordsCallback,
    Store,
    StoreFull,
    StoreUnavailable,
    StoreUncertain,
)
from ssehub.backends.local import LocalBroker
from ssehub.backends.memory import MemoryStore

__all__ = [
    "Backend",
    "Broker",
    "DuplicateId",
    "LocalBroker",
    "MemoryStore",
    "RecordsCallback",
    "Store",
    "StoreFull",
    "StoreUnavailable",
    "StoreUncertain",
    "backend_from_url",
]
