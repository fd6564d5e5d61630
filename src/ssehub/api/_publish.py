"""POST /publish: the body (form or JSON) as validated, encoded drafts; the answer's bytes."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_plus

from ssehub.api._messages import HTTPError, Request, Response
from ssehub.model import Draft, EventId, InvalidPublication, Publication, draft_all

__all__ = [
    "body_too_large",
    "form_fields",
    "ids_body",
    "ids_response",
    "parse_drafts",
    "parse_publications",
    "publication",
]

_PUBLISH_FIELDS = frozenset({"topic", "data", "event", "retry", "private"})
MAX_RETRY = 2**31 - 1  # ms: what browsers keep in a 32-bit field (about 24 days)


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON (RFC 8259 has no NaN or Infinity)")


def body_too_large(limit: int) -> HTTPError:
    return HTTPError(413, f"body is over the limit of {limit} bytes")


def publication(fields: dict[str, Any], where: str) -> Publication:
    """Shape-check one publication's fields; the hub validates the values when it drafts it."""
    if not _PUBLISH_FIELDS.issuperset(fields):
        name = min(fields.keys() - _PUBLISH_FIELDS)
        hint = " (ids are assigned by the hub)" if name == "id" else ""
        raise HTTPError(400, f"{where}unknown field {name!r}{hint}", field=name)
    topics = fields.get("topic")
    if type(topics) is str:
        topics = (topics,)
    elif not topics:
        raise HTTPError(400, f"{where}missing field 'topic'", field="topic")
    elif not isinstance(topics, list):
        raise HTTPError(400, f"{where}'topic' must be a string or a list of strings", field="topic")
    data = fields.get("data", "")
    if type(data) is not str:
        data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    retry = fields.get("retry")
    if type(retry) is str and retry.isascii() and retry.isdigit() and len(retry) <= 10:
        retry = int(retry)
    if retry is not None and (type(retry) is not int or not 0 <= retry <= MAX_RETRY):
        raise HTTPError(
            400, f"{where}'retry' must be a whole number of ms, at most {MAX_RETRY}", field="retry"
        )
    private = fields.get("private", False)
    if type(private) is str:  # a form field: present means private, as in Mercure ("on")
        private = True
    elif type(private) is not bool:
        raise HTTPError(400, f"{where}'private' must be true or false", field="private")
    return Publication(tuple(topics), data, fields.get("event", "message"), retry, private)


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "malformed form body: percent-encoded bytes are not UTF-8") from None


def form_fields(body: str) -> dict[str, Any]:
    """A form body's fields: `topic` a list (repeatable), any other field given once."""
    fields: dict[str, Any] = {}
    escaped = "%" in body or "+" in body  # else no name or value needs unquoting
    for pair in body.split("&") if body else ():
        name, equals, value = pair.partition("=")
        if not equals:
            raise HTTPError(400, f"malformed form body: {pair[:40]!r} is not name=value")
        if escaped:
            name = _unquote(name)
            value = _unquote(value)
        if name == "topic":
            if "topic" in fields:
                fields["topic"].append(value)
            else:
                fields["topic"] = [value]
        elif name in fields:
            raise HTTPError(400, f"field {name!r} given more than once", field=name)
        else:
            fields[name] = value
    return fields


def parse_publications(request: Request) -> list[Publication]:
    """The publications in a POST /publish body; HTTPError says what is wrong with it."""
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPError(400, f"body is not valid UTF-8 (byte {error.start})") from None
    media_type = request.media_type
    if media_type in ("application/x-www-form-urlencoded", ""):
        return [publication(form_fields(text), "")]
    if media_type == "application/json":
        try:
            payload = json.loads(text, parse_constant=_not_json)
        except RecursionError:
            raise HTTPError(400, "malformed JSON: nested too deeply") from None
        except ValueError as error:  # JSONDecodeError, NaN, a number of over 4300 digits
            raise HTTPError(400, f"malformed JSON: {str(error)[:200]}") from None
        if isinstance(payload, dict):
            return [publication(payload, "")]
        if isinstance(payload, list) and payload:
            if not all(isinstance(item, dict) for item in payload):
                raise HTTPError(400, "a JSON batch must be an array of objects")
            return [publication(item, f"item {i}: ") for i, item in enumerate(payload)]
        raise HTTPError(400, "JSON body must be an object or a non-empty array of objects")
    raise HTTPError(
        415,
        f"unsupported content type {media_type!r}: "
        "use application/x-www-form-urlencoded or application/json",
    )


def parse_drafts(request: Request) -> list[Draft]:
    """The publications of a POST /publish, validated and encoded (`Publication.draft`).

    HTTPError says what is wrong with the body or which value the hub refuses.
    """
    publications = parse_publications(request)
    try:
        return draft_all(publications)
    except InvalidPublication as error:
        where = f"item {error.index}: " if len(publications) > 1 else ""
        raise HTTPError(400, f"{where}{error}", field=error.field) from None


# Ids in these characters need no JSON escaping; the stores' ids all are.
_PLAIN_ID = re.compile(r"[0-9A-Za-z._:~-]*")


def ids_body(ids: list[EventId]) -> bytes:
    """The JSON body answering a publish: `{"ids": [...]}`, in publish order."""
    if all(_PLAIN_ID.fullmatch(event_id) for event_id in ids):
        return b'{"ids": ["%s"]}' % '", "'.join(ids).encode()
    return json.dumps({"ids": ids}, ensure_ascii=False).encode()


def ids_response(ids: list[EventId]) -> Response:
    return Response(200, ids_body(ids), paced=True)
