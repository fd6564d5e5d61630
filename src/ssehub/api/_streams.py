"""GET /events: which topics, where to resume, and the bytes a stream opens and beats with."""

from __future__ import annotations

from ssehub.api._messages import HTTPError, Request
from ssehub.model import topic_tuple
from ssehub.wire import comment

__all__ = ["HEARTBEAT", "last_event_id", "opening", "stream_topics"]

#: Written to an idle stream every heartbeat interval: proxies keep it, dead peers are found.
HEARTBEAT = comment("heartbeat")


def opening(retry: int) -> bytes:
    """A stream's first bytes: a comment so proxies flush at once, the reconnect delay hint."""
    return b": ssehub\nretry: %d\n\n" % retry


def stream_topics(request: Request) -> tuple[str, ...]:
    topics = request.query.get("topic", [])
    if not topics:
        raise HTTPError(400, "missing query parameter 'topic' (e.g. /events?topic=news)")
    try:
        return topic_tuple(topics)
    except ValueError as error:
        raise HTTPError(400, str(error), field="topic") from None


def last_event_id(request: Request) -> str | None:
    """The resume point: the Last-Event-ID header, else the `last_event_id` query parameter."""
    header = request.headers.get("last-event-id")
    if header is not None and header != "":
        return header
    values = request.query.get("last_event_id")
    return values[-1] if values and values[-1] != "" else None
