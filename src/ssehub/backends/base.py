"""What a backend is: a store (where history lives) and a broker (how events reach every process).

The two jobs vary apart. History can live in memory, in SQLite or in Redis; events reach the
other hub processes through nothing (one process) or through Redis. The hub talks only to these
two interfaces, so a new store or broker changes nothing above them.

A store issues ids and orders them: it alone parses an id (`replay`) and ranks records
(`Record.seq`). A broker hands every stored record, in id order, to every hub process's
`deliver` callback, this process's own records included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ssehub.model import Draft, EventId, Record, Replay

__all__ = [
    "Backend",
    "Broker",
    "DuplicateId",
    "RecordsCallback",
    "Store",
    "StoreFull",
    "StoreUnavailable",
    "StoreUncertain",
]

RecordsCallback = Callable[[Sequence[Record]], None]


class StoreUnavailable(Exception):
    """The store cannot take or answer anything now (its server is unreachable, its file cannot
    be written). Nothing of the operation was stored; the HTTP API answers 503 with the message."""


class StoreFull(StoreUnavailable):
    """The store holds as many topics as it may (`--max-topics`): a publish that would add one
    is refused whole (503), until history expires or is dropped."""


class StoreUncertain(StoreUnavailable):
    """The write was sent but its answer did not come in time (a hung Redis): the store may
    still apply it, and then delivers it like any stored event. A publisher that retries with
    its own id (`Draft.alias`) cannot publish it twice: a retry of an applied write is a
    `DuplicateId`."""


class DuplicateId(ValueError):
    """A publisher-chosen id (`Draft.alias`) that names an event the store still retains, or
    twice in one batch: the batch is refused whole (the API answers 409)."""


class Store(ABC):
    """Bounded per-topic history, ids, and replay."""

    #: True when a write costs about as much for one event as for several (a SQLite
    #: transaction): under load, the server then lets one more poll of its sockets add
    #: publishes to a turn's group before writing it.
    fixed_write_cost = False

    async def open(self) -> None:  # noqa: B027 - most stores have nothing to open
        """Connect or open files; called once by the hub before anything else."""

    async def close(self) -> None:  # noqa: B027
        """Release what `open` took."""

    @abstractmethod
    async def latest(self) -> EventId:
        """The id of the newest stored event (or of the store's origin, before any)."""

    def append_now(self, drafts: Sequence[Draft]) -> list[Record] | None:
        """Store without waiting for I/O when the store can; None (nothing stored) means use
        `append`. The memory store answers here, which spares the server a task per publish."""
        return None

    @abstractmethod
    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        """Assign ids and store: all drafts or none; StoreUnavailable when nothing was stored."""

    @abstractmethod
    async def replay(self, topics: Sequence[str], last_event_id: str) -> Replay:
        """Records on `topics` after the event `last_event_id`, or why they cannot be given.

        `last_event_id` is whatever a client sent: the store decides whether it is one of its
        ids, and answers a reset when it is not.
        """

    @abstractmethod
    async def history_sizes(self) -> dict[str, int]:
        """Retained events per topic (costs a visit of every topic)."""

    async def history_totals(self) -> tuple[int, int]:
        """(topics with history, events retained, counted once per topic): for metrics, which
        a store keeping counters answers without visiting every topic."""
        sizes = await self.history_sizes()
        return len(sizes), sum(sizes.values())

    def sweep(self) -> bool:
        """Drop expired history and forget empty topics, in slices: True while there is more
        to do (the hub calls again at the next turn), False when done for now. Stores that
        expire history themselves (SQLite, Redis) have nothing to do."""
        return False

    def problem(self) -> str | None:
        """Why the store cannot take publishes now (for health checks), or None."""
        return None


class Broker(ABC):
    """Delivery of every stored record to every hub process."""

    #: True when every stored record reaches `deliver` by way of the store (a log the broker
    #: follows), whoever stored it: `published` then has nothing to do, and a publisher that
    #: is cancelled once its write is under way leaves nothing undelivered.
    follows_store = False

    @abstractmethod
    async def start(self, store: Store, deliver: RecordsCallback) -> None:
        """Begin calling `deliver` with every record stored from now on, in id order."""

    async def close(self) -> None:  # noqa: B027 - a broker may hold nothing
        """Stop delivering."""

    @abstractmethod
    def published(self, records: Sequence[Record]) -> None:
        """`records` were just stored by this process: deliver them, or let them arrive the
        way every other process's do."""


@dataclass(frozen=True, slots=True)
class Backend:
    """A store and the broker that distributes what it stores."""

    store: Store
    broker: Broker
