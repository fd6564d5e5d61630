"""A Mercure publish (`POST /.well-known/mercure`) as the hub's own publication.

draft-dunglas-mercure-07, "Publication": the body is `application/x-www-form-urlencoded` with
`topic` (repeatable: "the first one is the canonical IRI, while next ones are alternate IRIs"),
`data`, `private` ("if this name is set, the update MUST NOT be dispatched to subscribers not
authorized"), `id` ("the topic's revision identifier: it will be used as the SSE's id property.
The provided ID MUST NOT start with the # character"), `type` ("the SSE's event property") and
`retry` ("the SSE's retry property").
"""

from __future__ import annotations

from ssehub.api import HTTPError, Request, form_fields, publication
from ssehub.hub import MAX_EVENT_ID
from ssehub.model import EARLIEST, Draft, InvalidPublication, draft_all

__all__ = ["parse_update"]

_FIELDS = frozenset({"topic", "data", "private", "id", "type", "retry"})


def parse_update(request: Request) -> Draft:
    """The update a Mercure publisher sends, validated and encoded; HTTPError 400 or 415."""
    if request.media_type not in ("application/x-www-form-urlencoded", ""):
        raise HTTPError(
            415,
            f"unsupported content type {request.media_type!r}: a Mercure update is "
            "application/x-www-form-urlencoded",
        )
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPError(400, f"body is not valid UTF-8 (byte {error.start})") from None
    fields = form_fields(text)
    unknown = fields.keys() - _FIELDS
    if unknown:
        name = min(unknown)
        raise HTTPError(400, f"unknown field {name!r} in a Mercure update", field=name)
    alias = fields.pop("id", None)
    if alias is not None:
        _check_id(alias)
    event = fields.pop("type", None)
    if event is not None:
        if event == "" or any(char in event for char in "\r\n\0"):
            raise HTTPError(400, "'type' must be a non-empty line (no CR, LF or NUL)", field="type")
        fields["event"] = event
    update = publication(fields, "")
    try:
        [draft] = draft_all([update])
    except InvalidPublication as error:
        raise HTTPError(400, str(error), field=error.field) from None
    draft.alias = alias
    return draft


def _check_id(alias: str) -> None:
    if alias.startswith("#"):
        raise HTTPError(400, "'id' must not start with '#' (reserved by Mercure)", field="id")
    if alias == "" or any(char in alias for char in "\r\n\0"):
        raise HTTPError(400, "'id' must be a non-empty line (no CR, LF or NUL)", field="id")
    if alias == EARLIEST:
        raise HTTPError(400, "'id' 'earliest' is reserved: it asks for all history", field="id")
    if len(alias) > MAX_EVENT_ID:
        raise HTTPError(400, f"'id' is over {MAX_EVENT_ID} characters", field="id")
