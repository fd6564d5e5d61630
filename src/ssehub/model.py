"""The hub's domain model: what is published, what is stored, what a resume gets back.

Every layer above imports these names from here; this module imports only the codec.

- `Publication`: one event a caller wants published (topics, data, type, retry).
- `Draft`: a publication validated and encoded, waiting for its id.
- `Record`: a stored event: its id, its place in the one order of events, the bytes every
  subscriber receives.
- `Replay`: what a resume gets: the records after a given id, or why it cannot have them.
- `check_topic` / `topic_tuple`: the one topic rule, written once.
- `EventId`: event ids are opaque text. Only the store that issues them parses them and knows
  their order (`Record.seq`); everything else passes them through.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from ssehub.wire import Event, encode

__all__ = [
    "EARLIEST",
    "MAX_TOPICS",
    "Audience",
    "Draft",
    "EventId",
    "InvalidPublication",
    "Publication",
    "Record",
    "Replay",
    "TopicSelector",
    "check_topic",
    "draft_all",
    "reset_record",
    "selection",
    "topic_tuple",
    "visible",
]

#: An event id as clients see it (`id:` on the wire, `Last-Event-ID` on a resume). Opaque to
#: everything but the store that issued it.
EventId: TypeAlias = str


class Audience(Protocol):
    """Who a subscriber is, as far as private events go (`ssehub.auth.Grants` is one).

    A private event reaches a subscriber of one of its topics only when its audience
    `may_receive` the event's topics; a subscriber without an audience gets public events only.
    Subscribers whose audiences have the same `key` are sent the same bytes.
    """

    @property
    def key(self) -> Hashable: ...

    def may_receive(self, topics: tuple[str, ...]) -> bool: ...


def visible(records: Iterable[Record], audience: Audience | None) -> list[Record]:
    """The records a subscriber with `audience` may be sent: public ones, and private ones its
    audience may receive."""
    return [
        record
        for record in records
        if not record.private or (audience is not None and audience.may_receive(record.topics))
    ]


# -- topics -------------------------------------------------------------------------------------

#: Topics one event or one subscription may name.
MAX_TOPICS = 100

_TOPIC_RULE = (
    "a topic is 1 to 256 printable characters: no spaces, line or paragraph separators, "
    "controls or format characters"
)


def _is_topic_name(text: str) -> bool:
    # Too long is refused before the cache, so that refused requests cannot fill it.
    return len(text) <= 256 and _is_short_topic_name(text)


# Publishers reuse a few topic names, so most checks are one cache lookup; the cache holds at
# most 4096 names of at most 256 characters.
@functools.lru_cache(maxsize=4096)
def _is_short_topic_name(text: str) -> bool:
    # str.isprintable() is False for every character of the categories Cc and Cf (C0 and C1
    # controls, U+0085, format characters such as U+200B or U+FEFF), Zl and Zp (U+2028,
    # U+2029), Zs but the ASCII space (U+00A0, U+3000...), Cs (lone surrogates), Co and Cn:
    # nothing a line-splitting client or a log could trip on. The ASCII space is refused apart.
    return 1 <= len(text) <= 256 and text.isprintable() and " " not in text


def check_topic(topic: object) -> str:
    """Return `topic` if it is a valid topic name; ValueError (starting "topic") if not."""
    if not isinstance(topic, str) or not _is_topic_name(topic):
        raise ValueError(f"topic {topic!r} is invalid: {_TOPIC_RULE}")
    return topic


def topic_tuple(topics: str | Iterable[str]) -> tuple[str, ...]:
    """One topic or several as a tuple of valid names, duplicates dropped, order kept."""
    names = (topics,) if isinstance(topics, str) else tuple(topics)
    if len(names) == 1:
        return (check_topic(names[0]),)
    if not names:
        raise ValueError("topic is missing: at least one topic is required")
    if len(names) > MAX_TOPICS:
        raise ValueError(f"topic: {len(names)} topics, at most {MAX_TOPICS} may be named at once")
    return tuple(dict.fromkeys(check_topic(name) for name in names))


class TopicSelector(str):
    """A pattern among a subscription's topics (Mercure's `*`, a URI template): the stream
    receives the events of every topic `matches` accepts. Only the layer that parsed the
    pattern knows how to match it (`ssehub.auth.compile_selector`); the hub only calls it.

    A subscription with a selector is served record by record (`Hub.add_writer`), and resumes
    by asking the store for the history of every topic it has that matches.
    """

    matches: Callable[[str], bool]

    def __new__(cls, text: str, matches: Callable[[str], bool]) -> TopicSelector:
        selector = super().__new__(cls, text)
        selector.matches = matches
        return selector


def selection(topics: Sequence[str]) -> Callable[[tuple[str, ...]], bool] | None:
    """None when `topics` are all names; else whether a record's topics are selected."""
    patterns = [topic for topic in topics if isinstance(topic, TopicSelector)]
    if not patterns:
        return None
    names = frozenset(topic for topic in topics if not isinstance(topic, TopicSelector))

    def selected(record_topics: tuple[str, ...]) -> bool:
        return any(
            topic in names or any(pattern.matches(topic) for pattern in patterns)
            for topic in record_topics
        )

    return selected


# -- publishing ---------------------------------------------------------------------------------

# Draft, Record and Publication are built on every publish and never changed afterwards; they
# are not frozen only because a frozen dataclass costs four times as much to construct.


@dataclass(slots=True)
class Draft:
    """A validated publication waiting for its id. `body` is the encoded event without `id:`.

    A `private` event reaches only subscribers whose audience may receive it (`Audience`).
    `alias`: an id the publisher chose (Mercure's `id` field). It becomes the event's id on the
    wire, and the store resolves it on a resume like an id it issued; `Record.seq` still orders.
    """

    topics: tuple[str, ...]
    data: str
    event: str
    retry: int | None
    body: bytes
    private: bool = False
    alias: EventId | None = None


class InvalidPublication(ValueError):
    """A publication that cannot be sent. Nothing of its batch was published.

    `field` names the culprit ("topic", "data", "event" or "retry"), `index` its place in the batch.
    """

    def __init__(self, message: str, field: str | None, index: int) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


_FIELDS = ("topic", "data", "event", "retry")


@dataclass(slots=True)
class Publication:
    """One event to publish to one or more topics. The store assigns its id."""

    topics: tuple[str, ...]
    data: str = ""
    event: str = "message"
    retry: int | None = None
    private: bool = False

    def draft(self) -> Draft:
        """Validate and encode; raises ValueError or TypeError starting with the field's name."""
        topics = topic_tuple(self.topics)
        if not self.event:
            raise ValueError("event must not be empty")
        body = encode(Event(self.data, self.event, None, self.retry))
        return Draft(topics, self.data, self.event, self.retry, body, self.private is True)


def draft_all(publications: Iterable[Publication]) -> list[Draft]:
    """Draft every publication, or raise InvalidPublication for the first that cannot be."""
    drafts = []
    for index, publication in enumerate(publications):
        try:
            drafts.append(publication.draft())
        except (ValueError, TypeError) as error:
            message = str(error)
            field = message.partition(" ")[0]
            raise InvalidPublication(message, field if field in _FIELDS else None, index) from None
    return drafts


# -- storing ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """A stored event: its id, its topics, and the exact bytes every subscriber receives.

    `seq` is the event's place in the one order of all events, as the store that issued `id`
    ranks it: a later event has a larger `seq`. The hub compares records by `seq` and never
    looks inside `id`.
    """

    id: EventId
    seq: int
    topics: tuple[str, ...]
    data: str
    event: str
    retry: int | None
    time: float
    payload: bytes
    private: bool = False

    @classmethod
    def from_draft(cls, draft: Draft, event_id: EventId, seq: int, time: float) -> Record:
        """The stored event of `draft`, under the id the store issued or the publisher's own."""
        if draft.alias is not None:
            event_id = draft.alias
        # The id line leads so the draft's encoded body is reused as is: encode once per event.
        payload = b"id: %s\n%s%s" % (event_id.encode(), _topic_lines(draft.topics), draft.body)
        return cls(
            event_id,
            seq,
            draft.topics,
            draft.data,
            draft.event,
            draft.retry,
            time,
            payload,
            draft.private,
        )

    def to_event(self) -> Event:
        return Event(data=self.data, event=self.event, id=self.id, retry=self.retry)


@functools.lru_cache(maxsize=4096)
def _topic_lines(topics: tuple[str, ...]) -> bytes:
    """The `topic:` lines of a record; remembered, as a hub publishes to few distinct sets."""
    return b"".join(b"topic: %s\n" % topic.encode() for topic in topics)


#: The resume point meaning "every event still retained" (Mercure's `earliest`). No store issues
#: it as an id, and a publisher may not choose it.
EARLIEST: EventId = "earliest"


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to "what did I miss after this id on these topics?".

    Either `records` (in publish order, possibly empty) after the resume point, whose place in
    the order is `after` (its `seq`); or a `reset` reason when the gap cannot be filled: the id
    is unknown, malformed, or older than what the history still holds.
    """

    records: Sequence[Record] = ()
    after: int = 0
    reset: str | None = None


def reset_record(reason: str, last_event_id: str, position: EventId) -> Record:
    """The explicit `reset` event: the gap cannot be filled, refetch state; resume from here.

    `position` is the id of the newest event the stream has been sent, so a client that
    reconnects after the reset resumes from there.
    """
    # ASCII: a resume point from a query string may hold lone surrogates (bytes that were not
    # UTF-8), which only an escape can carry.
    data = json.dumps({"reason": reason, "last_event_id": last_event_id})
    draft = Draft((), data, "reset", None, encode(Event(data=data, event="reset")))
    return Record.from_draft(draft, position, 0, 0.0)
