"""Stores (memory) and brokers (in-process): where history lives and how events travel."""

from ssehub.backends.base import Backend, Broker, RecordsCallback, Store
from ssehub.backends.local import LocalBroker
from ssehub.backends.memory import MemoryStore

__all__ = ["Backend", "Broker", "LocalBroker", "MemoryStore", "RecordsCallback", "Store"]
