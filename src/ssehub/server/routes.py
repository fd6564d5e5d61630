"""What each URL of `ssehub serve` does. Handlers take a Request and return a Response or a
StreamReply, or an awaitable of one when the work needs I/O."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from ssehub.backends.base import Draft
from ssehub.fanout import ROUND_INTERVAL
from ssehub.hub import Hub, InvalidPublication, Publication, check_topic, draft_all
from ssehub.server.http import (
    JSON_200_HEAD,
    HTTPError,
    Request,
    Response,
    StreamReply,
    json_response,
)

__all__ = [
    "Handler",
    "Reply",
    "Router",
    "ServerConfig",
    "id_reply",
    "ids_response",
    "last_event_id",
    "parse_drafts",
    "parse_publications",
    "stream_topics",
]

Reply = Response | StreamReply
Handler = Callable[[Request], Reply | Awaitable[Reply]]


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    history: int = 1000
    history_ttl: float | None = 3600.0
    write_interval: float = ROUND_INTERVAL
    heartbeat: float = 15.0
    retry: int = 3000
    cors_origins: tuple[str, ...] = ()
    max_connections: int = 10_000
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    max_buffer_bytes: int = 1024 * 1024
    idle_timeout: float = 60.0
    shutdown_grace: float = 1.0
    demo: bool = False
    extra_routes: dict[tuple[str, str], Handler] = field(default_factory=dict)

    def new_hub(self) -> Hub:
        """A hub with this configuration's history and write interval."""
        return Hub(
            history=self.history,
            history_ttl=self.history_ttl,
            write_interval=self.write_interval,
        )


_PUBLISH_FIELDS = frozenset({"topic", "data", "event", "retry"})


def _publication(fields: dict[str, Any], where: str) -> Publication:
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
    if type(retry) is str and retry.isascii() and retry.isdigit():
        retry = int(retry)
    elif retry is not None and (type(retry) is not int or retry < 0):
        raise HTTPError(400, f"{where}'retry' must be a whole number of ms", field="retry")
    return Publication(tuple(topics), data, fields.get("event", "message"), retry)


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "malformed form body: percent-encoded bytes are not UTF-8") from None


def _form_fields(body: str) -> dict[str, Any]:
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
        return [_publication(_form_fields(text), "")]
    if media_type == "application/json":
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise HTTPError(400, f"malformed JSON: {error}") from None
        if isinstance(payload, dict):
            return [_publication(payload, "")]
        if isinstance(payload, list) and payload:
            if not all(isinstance(item, dict) for item in payload):
                raise HTTPError(400, "a JSON batch must be an array of objects")
            return [_publication(item, f"item {i}: ") for i, item in enumerate(payload)]
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


# Ids are decimal digits: no JSON escaping can be needed.
_IDS_BODY = b'{"ids": ["%s"]}'
_ID_REPLY = JSON_200_HEAD + _IDS_BODY
_ID_BODY_LENGTH = len(_IDS_BODY) - 2  # without the "%s"


def ids_response(ids: list[str]) -> Response:
    return Response(200, _IDS_BODY % '", "'.join(ids).encode(), paced=True)


def id_reply(event_id: str) -> bytes:
    """The bytes of `ids_response([event_id])` on a keep-alive connection with no CORS: the
    whole answer to one plain publish, for the server's fast path."""
    return _ID_REPLY % (_ID_BODY_LENGTH + len(event_id), event_id.encode())


def stream_topics(request: Request) -> tuple[str, ...]:
    topics = request.query.get("topic", [])
    if not topics:
        raise HTTPError(400, "missing query parameter 'topic' (e.g. /events?topic=news)")
    try:
        return tuple(dict.fromkeys(check_topic(topic) for topic in topics))
    except ValueError as error:
        raise HTTPError(400, str(error), field="topic") from None


def last_event_id(request: Request) -> str | None:
    """The resume point: the Last-Event-ID header, else the `last_event_id` query parameter."""
    header = request.headers.get("last-event-id")
    if header is not None and header != "":
        return header
    values = request.query.get("last_event_id")
    return values[-1] if values and values[-1] != "" else None


class Router:
    """Maps (method, path) to handlers; the hub's own routes plus any extras (demos)."""

    def __init__(self, hub: Hub, config: ServerConfig, metrics: Callable[[], str]) -> None:
        self.hub = hub
        self._metrics = metrics
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/events"): self.events,
            ("POST", "/publish"): self.publish,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/metrics"): self.metrics,
            **config.extra_routes,
        }
        self._web = resources.files("ssehub") / "web"

    def handle(self, request: Request) -> Reply | Awaitable[Reply]:
        handler = self.routes.get((request.method, request.path))
        if handler is not None:
            return handler(request)
        if request.method in ("GET", "HEAD"):
            return self.static(request)
        if any(path == request.path for _, path in self.routes):
            raise HTTPError(405, f"method {request.method} not allowed on {request.path}")
        raise HTTPError(404, f"no route for {request.method} {request.path}")

    def events(self, request: Request) -> StreamReply:
        return StreamReply(stream_topics(request), last_event_id(request))

    def publish(self, request: Request) -> Reply | Awaitable[Reply]:
        return self.publish_drafts(parse_drafts(request))

    def publish_drafts(self, drafts: list[Draft]) -> Reply | Awaitable[Reply]:
        """Publish validated, encoded publications (`Publication.draft`); answer their ids."""
        ids = self.hub.publish_drafts_now(drafts)
        if ids is not None:
            return ids_response(ids)
        return self._publish_later(drafts)

    async def _publish_later(self, drafts: list[Draft]) -> Reply:
        return ids_response(await self.hub.publish_drafts(drafts))

    def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    def metrics(self, request: Request) -> Response:
        return Response(200, self._metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def static(self, request: Request) -> Response:
        relative = PurePosixPath(request.path.lstrip("/") or "index.html")
        if ".." in relative.parts or relative.is_absolute():
            raise HTTPError(404, f"no such file: {request.path}")
        resource = self._web.joinpath(*relative.parts) if relative.parts else self._web
        if resource.is_dir():
            resource = resource / "index.html"
        if not resource.is_file():
            raise HTTPError(404, f"no route for {request.method} {request.path}")
        content_type = mimetypes.guess_type(resource.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        headers = [("Cache-Control", "no-cache")]
        return Response(200, resource.read_bytes(), content_type, headers)
