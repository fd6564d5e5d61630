"""A Mercure subscription's topics and resume point (draft-dunglas-mercure-07, "Subscription"
and "Reconnection, State Reconciliation and Event Sourcing")."""

from __future__ import annotations

from ssehub.api import HTTPError, Request
from ssehub.auth import compile_selector
from ssehub.model import TopicSelector, topic_tuple

__all__ = ["resume_point", "subscribed_topics"]

#: Query parameters naming the resume point, in the order they are believed: Mercure 0.x's
#: `lastEventID`, the `Last-Event-ID` older Symfony versions send, the 1.0 drafts'
#: `last_event_id` (also ssehub's own). The `Last-Event-ID` header wins over them all.
RESUME_PARAMETERS = ("lastEventID", "Last-Event-ID", "last_event_id")


def subscribed_topics(request: Request) -> tuple[str, ...]:
    """The `topic` selectors: "The subscriber MUST send at least one topic selector". Each is
    "either an URI template [...] or a string"; `*` selects every topic. A URI template
    (`https://example.com/books/{id}`) and `*` become `TopicSelector`s, the rest plain names."""
    # The 1.0 drafts call them `match`; 0.x has no such parameter, so both are read.
    selectors = request.query.get("topic", []) + request.query.get("match", [])
    if not selectors:
        raise HTTPError(
            400,
            f"missing query parameter 'topic' (e.g. {request.path}?topic=https://example.com/books/1)",
        )
    try:
        names = topic_tuple(selectors)
    except ValueError as error:
        raise HTTPError(400, str(error), field="topic") from None
    return tuple(_selector(name) for name in names)


def _selector(text: str) -> str:
    compiled = compile_selector(text)
    if compiled.is_wildcard or compiled.is_template:
        return TopicSelector(text, compiled.matches)
    return text


def resume_point(request: Request) -> str | None:
    """Where to resume: "If both the Last-Event-ID HTTP header and the query parameter are
    present, the HTTP header MUST take precedence"; `earliest` asks for all history."""
    header = request.headers.get("last-event-id")
    if header:
        return header
    for name in RESUME_PARAMETERS:
        values = request.query.get(name)
        if values and values[-1]:
            return values[-1]
    return None
