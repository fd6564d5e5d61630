"""The route table: what each URL of the hub means, for every shell.

`Api.handle(request)` returns a `Response`, a `StreamReply` (make this request a hub stream), or
an awaitable of either when the work needs I/O; it raises `HTTPError` for a refusal. The native
server and the ASGI app both delegate here, so they serve the same routes the same way.
"""

from __future__ import annotations

import inspect
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath

from ssehub.api._access import Access, Authorize, check_topics
from ssehub.api._cors import Cors
from ssehub.api._hosts import host_allowed
from ssehub.api._messages import (
    SSE_HEADERS,
    Handler,
    HTTPError,
    Reply,
    Request,
    Response,
    StreamReply,
    json_response,
)
from ssehub.api._metrics import CONTENT_TYPE, Traffic, metrics_text
from ssehub.api._publish import ids_response, parse_drafts
from ssehub.api._streams import last_event_id, stream_topics
from ssehub.auth import Grants, Policy
from ssehub.backends.base import DuplicateId, StoreUnavailable, StoreUncertain
from ssehub.hub import Hub
from ssehub.model import Draft, EventId

__all__ = ["Api", "ApiConfig"]


@dataclass(slots=True)
class ApiConfig:
    """How the HTTP API behaves, whichever shell serves it."""

    retry: int = 3000  # the reconnect delay (ms) each stream opens with
    heartbeat: float | None = 15.0  # seconds between heartbeat comments on an idle stream
    cors_origins: tuple[str, ...] = ()
    cors_credentials: bool = False  # Access-Control-Allow-Credentials for listed origins
    # Host header names served (DNS rebinding); None: any. See ssehub.api._hosts.
    allowed_hosts: frozenset[str] | None = None
    max_body_bytes: int = 1024 * 1024
    console: bool = False  # serve the console and demo pages (src/ssehub/web) on GET
    extra_routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    # Who may publish and read (see ssehub.api._access): a JWT policy, or an app's own
    # decision; with neither, publishing from loopback only.
    policy: Policy | None = None
    authorize: Authorize | None = None
    metrics_token: str | None = None  # /metrics from anywhere with this bearer token
    metrics_topics: int = 0  # per-topic history series for the N largest topics (0: none)
    trusted_proxies: frozenset[str] = frozenset()  # X-Forwarded-For is believed from these


class Api:
    """The hub's HTTP API: `/events`, `/publish`, `/healthz`, `/metrics`, CORS, the console."""

    def __init__(self, hub: Hub, config: ApiConfig, traffic: Traffic | None = None) -> None:
        self.hub = hub
        self.config = config
        self.traffic = traffic if traffic is not None else Traffic()
        self.cors = Cors(config.cors_origins, config.cors_credentials)
        self.access = Access(
            config.policy,
            config.authorize,
            self.cors,
            config.metrics_token,
            config.trusted_proxies,
        )
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/events"): self.events,
            ("POST", "/publish"): self.publish,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/metrics"): self.metrics,
            **config.extra_routes,
        }
        # (method, prefix, handler): every path under `prefix/` (Mercure's subscriptions API).
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        # Sent with the console's pages (Mercure's discovery `Link`).
        self.page_headers: list[tuple[str, str]] = []
        self._web = resources.files("ssehub") / "web"

    def handle(self, request: Request) -> Reply | Awaitable[Reply]:
        host = request.headers.get("host")
        if host is None:
            if request.http_version == "1.1":
                raise HTTPError(400, "missing Host header: HTTP/1.1 requires one")
        elif self.config.allowed_hosts is not None and not host_allowed(
            host, self.config.allowed_hosts
        ):
            raise HTTPError(
                403, f"host {host!r} is not served here (see --allowed-host)", field="host"
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise HTTPError(
                415, f"Content-Encoding {encoding!r} is not supported: send the body unencoded"
            )
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            handler = self._under_prefix(request)
        if handler is not None:
            return handler(request)
        if request.method == "HEAD" and ("GET", request.path) in self.routes:
            return _head(self.routes["GET", request.path](request))
        if request.method == "OPTIONS":
            return self.cors.preflight(request)
        allowed = sorted({method for method, path in self.routes if path == request.path})
        if "GET" in allowed:
            allowed.append("HEAD")
        if allowed:
            raise HTTPError(
                405,
                f"method {request.method} not allowed on {request.path}",
                headers=[("Allow", ", ".join(allowed))],
            )
        if self.config.console and request.method in ("GET", "HEAD"):
            return self.static(request)
        raise HTTPError(404, f"no route for {request.method} {request.path}")

    def _under_prefix(self, request: Request) -> Handler | None:
        for method, prefix, handler in self.prefix_routes:
            if request.path.startswith(prefix + "/"):
                if request.method == method:
                    return handler
                if request.method == "HEAD" and method == "GET":
                    return lambda request: _head(handler(request))
        return None

    def events(self, request: Request) -> Reply | Awaitable[Reply]:
        topics = stream_topics(request)
        grants = self.access.subscriber(request)
        if inspect.isawaitable(grants):
            return self._events_later(request, topics, grants)
        return _stream_reply(request, topics, grants)

    async def _events_later(
        self, request: Request, topics: tuple[str, ...], grants: Awaitable[Grants]
    ) -> Reply:
        return _stream_reply(request, topics, await grants)

    def publish(self, request: Request) -> Reply | Awaitable[Reply]:
        grants = self.access.publisher(request)
        if inspect.isawaitable(grants):
            return self._publish_authorized_later(request, grants)
        drafts = parse_drafts(request)
        if grants is not None:
            check_topics(grants, (topic for draft in drafts for topic in draft.topics))
        return self.publish_drafts(drafts)

    async def _publish_authorized_later(self, request: Request, grants: Awaitable[Grants]) -> Reply:
        drafts = parse_drafts(request)
        check_topics(await grants, (topic for draft in drafts for topic in draft.topics))
        reply = self.publish_drafts(drafts)
        return reply if isinstance(reply, Response | StreamReply) else await reply

    def publish_drafts(
        self, drafts: list[Draft], answer: Callable[[list[EventId]], Response] = ids_response
    ) -> Reply | Awaitable[Reply]:
        """Publish validated, encoded publications (`Publication.draft`); `answer` their ids
        (by default `{"ids": [...]}`)."""
        try:
            ids = self.hub.publish_drafts_now(drafts)
        except (StoreUnavailable, DuplicateId) as error:  # StoreFull: --max-topics
            raise _refused(error) from None
        if ids is not None:
            return answer(ids)
        return self._publish_later(drafts, answer)

    async def _publish_later(
        self, drafts: list[Draft], answer: Callable[[list[EventId]], Response]
    ) -> Reply:
        try:
            return answer(await self.hub.publish_drafts(drafts))
        except (StoreUnavailable, DuplicateId) as error:
            raise _refused(error) from None

    def healthz(self, request: Request) -> Response:
        problem = self.hub.problem()
        if problem is not None:
            return json_response({"status": "unavailable", "error": problem}, 503)
        return json_response({"status": "ok"})

    async def metrics(self, request: Request) -> Reply:
        self.access.may_read_metrics(request)
        try:
            text = await metrics_text(self.hub, self.traffic, self.config.metrics_topics)
        except StoreUnavailable as error:
            raise HTTPError(503, f"metrics are unavailable: {error}") from None
        return Response(200, text.encode(), CONTENT_TYPE)

    def static(self, request: Request) -> Response:
        relative = PurePosixPath(request.path.lstrip("/") or "index.html")
        if ".." in relative.parts or relative.is_absolute():
            raise HTTPError(404, f"no such file: {request.path}")
        resource = self._web.joinpath(*relative.parts) if relative.parts else self._web
        try:
            if resource.is_dir():
                resource = resource / "index.html"
            found = resource.is_file()
        except OSError:  # a name the file system cannot hold (ENAMETOOLONG): no such file
            found = False
        if not found:
            raise HTTPError(404, f"no route for {request.method} {request.path}")
        content_type = mimetypes.guess_type(resource.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        headers = [("Cache-Control", "no-cache"), *self.page_headers]
        return Response(200, resource.read_bytes(), content_type, headers)


def _refused(error: StoreUnavailable | DuplicateId) -> HTTPError:
    """Not published: 409 for a publisher id in use, 503 when the store cannot store (or did
    not say in time whether it stored: `StoreUncertain`)."""
    if isinstance(error, DuplicateId):
        return HTTPError(409, f"nothing was published: {error}", field="id")
    if isinstance(error, StoreUncertain):
        return HTTPError(503, f"not known whether this was published: {error}")
    return HTTPError(503, f"nothing was published: {error}")


def _stream_reply(request: Request, topics: tuple[str, ...], grants: Grants | None) -> StreamReply:
    return StreamReply(
        topics,
        last_event_id(request),
        audience=grants,
        expires=None if grants is None else grants.exp,
    )


def _head(reply: Reply | Awaitable[Reply]) -> Reply | Awaitable[Reply]:
    """HEAD where GET works: the GET's answer, decided the same way (topics, tokens), without a
    body; a stream's headers, without the stream."""
    if inspect.isawaitable(reply):
        return _head_later(reply)
    if isinstance(reply, StreamReply):
        return Response(200, b"", SSE_HEADERS[0][1], [*SSE_HEADERS[1:], *reply.headers])
    return reply


async def _head_later(reply: Awaitable[Reply]) -> Reply:
    answer = _head(await reply)
    assert isinstance(answer, Response)
    return answer
