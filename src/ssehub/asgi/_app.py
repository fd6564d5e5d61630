"""The hub's HTTP API as an ASGI app: scope, receive and send around `ssehub.api.Api`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ssehub.api import (
    Api,
    ApiConfig,
    Authorize,
    ErrorLog,
    HTTPError,
    Response,
    StreamReply,
    Traffic,
    body_too_large,
)
from ssehub.asgi._responses import HubStreamResponse
from ssehub.asgi._scope import Receive, Scope, Send, request_of
from ssehub.auth import DEFAULT_ALGORITHM, Policy
from ssehub.hub import Hub
from ssehub.mercure import mount as mount_mercure

__all__ = ["HubApp", "hub_app"]


class HubApp:
    """The hub's HTTP API as an ASGI app: the same routes and answers as `ssehub serve`.

    `GET /events`, `POST /publish`, `GET /healthz`, `GET /metrics`, CORS for `cors_origins`
    (see docs/CONTRACTS.md), with the console and demo pages too when `console=True`. Mount it
    (`app.mount("/sse", hub.asgi_app(jwt_key=...))`) or serve it alone; served alone, its
    lifespan starts and closes the hub.

    Who may publish and read, as `ssehub serve` decides it: `jwt_key` (and `jwt_algorithm`,
    `allow_anonymous`) or a ready `policy` for Mercure-style JWTs; or `authorize(request)`,
    the app's own decision, returning `ssehub.auth.Grants` (or an awaitable of them); with
    none of these, publishing from loopback addresses only and public events for everyone.

    Mercure's hub at `/.well-known/mercure` too (`ssehub.mercure`); `subscriptions=True` adds
    its active subscriptions.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        heartbeat: float | None = 15.0,
        retry: int = 3000,
        send_timeout: float | None = 10.0,
        max_pending_bytes: int = 1024 * 1024,
        max_body_bytes: int = 1024 * 1024,
        cors_origins: tuple[str, ...] = (),
        cors_credentials: bool = False,
        allowed_hosts: tuple[str, ...] = (),
        console: bool = False,
        jwt_key: str | bytes | None = None,
        jwt_algorithm: str = DEFAULT_ALGORITHM,
        allow_anonymous: bool = False,
        policy: Policy | None = None,
        authorize: Authorize | None = None,
        metrics_token: str | None = None,
        metrics_topics: int = 0,
        trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1"),
        subscriptions: bool = False,
    ) -> None:
        self.hub = hub
        self._errors = ErrorLog(logging.getLogger("ssehub.asgi"))
        self.send_timeout = send_timeout
        self.max_pending_bytes = max_pending_bytes
        if jwt_key is not None:
            if policy is not None:
                raise ValueError("give jwt_key or policy, not both")
            policy = Policy(jwt_key, jwt_algorithm, allow_anonymous=allow_anonymous)
        self.api = Api(
            hub,
            ApiConfig(
                retry=retry,
                heartbeat=heartbeat,
                cors_origins=tuple(cors_origins),
                cors_credentials=cors_credentials,
                allowed_hosts=frozenset(allowed_hosts) if allowed_hosts else None,
                max_body_bytes=max_body_bytes,
                console=console,
                policy=policy,
                authorize=authorize,
                metrics_token=metrics_token,
                metrics_topics=metrics_topics,
                trusted_proxies=frozenset(trusted_proxies),
            ),
        )
        mount_mercure(self.api, subscriptions=subscriptions)

    @property
    def traffic(self) -> Traffic:
        return self.api.traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"ssehub's hub app serves HTTP, not {scope['type']!r}")
        traffic = self.api.traffic
        # An ASGI app sees requests, not connections: "connections" counts requests in progress.
        traffic.connections += 1
        try:
            await self._serve(scope, receive, send)
        finally:
            traffic.connections -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        cors = self.api.cors.headers(request)
        try:
            request.body = await self._read_body(request.headers, receive)
            reply = self.api.handle(request)
            if not isinstance(reply, (Response, StreamReply)):
                reply = await reply
        except HTTPError as error:
            reply = error.response()
        except Exception as error:  # a bug: answered and counted, not a traceback per request
            self._errors.report(f"handling {request.method} {request.path}", error)
            reply = HTTPError(500, "internal error").response()
        if isinstance(reply, StreamReply):
            await self._stream(reply, cors, scope, receive, send)
            return
        if reply.status >= 400:
            self.api.traffic.count_rejection(reply.status)
        elif reply.paced and self.hub.publishers_wait():
            # As the native server does: the answer waits until delivery has caught up.
            delivered = asyncio.Event()
            self.hub.hold_publisher(delivered.set)
            await delivered.wait()
        await _send_response(send, reply, cors, request.method == "HEAD")

    async def _stream(
        self,
        reply: StreamReply,
        cors: list[tuple[str, str]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        config = self.api.config
        response = HubStreamResponse(
            self.hub,
            reply.topics,
            reply.last_event_id,
            audience=reply.audience,
            expires=reply.expires,
            heartbeat=config.heartbeat,
            retry=config.retry,
            send_timeout=self.send_timeout,
            max_pending_bytes=self.max_pending_bytes,
            headers=dict([*reply.headers, *cors]),
        )
        traffic = self.api.traffic
        traffic.open_streams += 1
        try:
            await response(scope, receive, send)
        finally:
            traffic.open_streams -= 1
            if reply.on_close is not None:
                reply.on_close()

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        limit = self.api.config.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client disconnected before sending the whole body")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise body_too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.hub.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_response(
    send: Send, response: Response, extra: list[tuple[str, str]], head_only: bool
) -> None:
    headers = [
        *(
            ((b"content-type", response.content_type.encode("latin-1")),)
            if response.content_type
            else ()
        ),
        (b"content-length", b"%d" % len(response.body)),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (*response.headers, *extra)
        ),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})


#: `hub_app(hub)`: the hub's HTTP API as an ASGI app, to mount anywhere.
hub_app = HubApp
