"""The route table: what each URL of the hub means, for every shell.

`Api.handle(request)` returns a `Response`, a `StreamReply` (make this request a hub stream), or
an awaitable of either when the work needs I/O; it raises `HTTPError` for a refusal. The native
server and the ASGI app both delegate here, so they serve the same routes the same way.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath

from ssehub.api._cors import Cors
from ssehub.api._messages import (
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
from ssehub.backends.base import StoreUnavailable
from ssehub.hub import Hub
from ssehub.model import Draft

__all__ = ["Api", "ApiConfig"]


@dataclass(slots=True)
class ApiConfig:
    """How the HTTP API behaves, whichever shell serves it."""

    retry: int = 3000  # the reconnect delay (ms) each stream opens with
    heartbeat: float | None = 15.0  # seconds between heartbeat comments on an idle stream
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    console: bool = False  # serve the console and demo pages (src/ssehub/web) on GET
    extra_routes: dict[tuple[str, str], Handler] = field(default_factory=dict)


class Api:
    """The hub's HTTP API: `/events`, `/publish`, `/healthz`, `/metrics`, CORS, the console."""

    def __init__(self, hub: Hub, config: ApiConfig, traffic: Traffic | None = None) -> None:
        self.hub = hub
        self.config = config
        self.traffic = traffic if traffic is not None else Traffic()
        self.cors = Cors(config.cors_origins)
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
        if request.method == "OPTIONS":
            return self.cors.preflight(request)
        allowed = sorted({method for method, path in self.routes if path == request.path})
        if allowed:
            raise HTTPError(
                405,
                f"method {request.method} not allowed on {request.path}",
                headers=[("Allow", ", ".join(allowed))],
            )
        if self.config.console and request.method in ("GET", "HEAD"):
            return self.static(request)
        raise HTTPError(404, f"no route for {request.method} {request.path}")

    def events(self, request: Request) -> Reply:
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
        try:
            return ids_response(await self.hub.publish_drafts(drafts))
        except StoreUnavailable as error:
            raise HTTPError(503, f"nothing was published: {error}") from None

    def healthz(self, request: Request) -> Response:
        problem = self.hub.problem()
        if problem is not None:
            return json_response({"status": "unavailable", "error": problem}, 503)
        return json_response({"status": "ok"})

    async def metrics(self, request: Request) -> Reply:
        try:
            text = await metrics_text(self.hub, self.traffic)
        except StoreUnavailable as error:
            raise HTTPError(503, f"metrics are unavailable: {error}") from None
        return Response(200, text.encode(), CONTENT_TYPE)

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
