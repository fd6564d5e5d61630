"""What a backend is: where history lives and how events reach every hub process.

The hub core talks only to this interface, so swapping the in-memory backend for Redis changes
nothing above it. A backend assigns ids (increasing integers), keeps bounded per-topic history,
answers replay questions, and calls the hub back with every record published anywhere.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ssehub.wire import Event

__all__ = ["Backend", "Draft", "Record", "Replay"]


# Draft and Record are built on every publish and never changed afterwards; they are not
# frozen only because a frozen dataclass costs four times as much to construct.


@dataclass(slots=True)
class Draft:
    """A validated publication waiting for its id. `body` is the encoded event without `id:`."""

    topics: tuple[str, ...]
    data: str
    event: str
    retry: int | None
    body: bytes


@dataclass(slots=True)
class Record:
    """A published event: its id, topics, and the exact bytes every subscriber receives."""

    seq: int
    topics: tuple[str, ...]
    data: str
    event: str
    retry: int | None
    time: float
    payload: bytes

    @classmethod
    def from_draft(cls, draft: Draft, seq: int, time: float) -> Record:
        # The id line leads so the draft's encoded body is reused as is: encode once per event.
        payload = b"id: %d\n%s%s" % (seq, _topic_lines(draft.topics), draft.body)
        return cls(seq, draft.topics, draft.data, draft.event, draft.retry, time, payload)

    def to_event(self) -> Event:
        return Event(data=self.data, event=self.event, id=str(self.seq), retry=self.retry)


@functools.lru_cache(maxsize=4096)
def _topic_lines(topics: tuple[str, ...]) -> bytes:
    """The `topic:` lines of a record; remembered, as a hub publishes to few distinct sets."""
    return b"".join(b"topic: %s\n" % topic.encode() for topic in topics)


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to "what did I miss after id N on these topics?".

    Either `records` (in publish order, possibly empty) or a `reset` reason when the gap cannot be
    filled: the id is unknown, or older than what the history still holds.
    """

    records: Sequence[Record] = ()
    reset: str | None = None


RecordsCallback = Callable[[Sequence[Record]], None]


class Backend(ABC):
    """Storage and distribution of published events."""

    @abstractmethod
    async def start(self, on_records: RecordsCallback) -> None:
        """Begin delivering every published record, in id order, to `on_records`."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def latest(self) -> int:
        """The newest id known to this process (ids after it have not been delivered yet)."""

    def append_now(self, drafts: Sequence[Draft]) -> list[Record] | None:
        """Publish without waiting for I/O when the backend can; None means use `append`.

        The in-memory backend answers here, which spares the server a task per publish.
        """
        return None

    @abstractmethod
    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        """Assign ids, store, and deliver: all drafts or none."""

    @abstractmethod
    async def replay(self, topics: Sequence[str], after: int) -> Replay:
        """Records on `topics` with ids greater than `after`, or why they cannot be given."""

    @abstractmethod
    def history_sizes(self) -> dict[str, int]:
        """Retained events per topic, for metrics."""
