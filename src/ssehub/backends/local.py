"""The in-process broker: what this process stores is delivered to this process, at once."""

from __future__ import annotations

from collections.abc import Sequence

from ssehub.backends.base import Broker, RecordsCallback, Store
from ssehub.model import Record

__all__ = ["LocalBroker"]


class LocalBroker(Broker):
    """Delivery within one process: for a store that only this process writes to."""

    def __init__(self) -> None:
        self._deliver: RecordsCallback = _nowhere

    async def start(self, store: Store, deliver: RecordsCallback) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = _nowhere

    def published(self, records: Sequence[Record]) -> None:
        self._deliver(records)


def _nowhere(records: Sequence[Record]) -> None:
    """Where records go while the broker is not started: no hub is listening."""
