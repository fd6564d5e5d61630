"""ASGI scopes as the API's requests: path under a mount, headers, the resume point."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ssehub import api
from ssehub.api import Request

__all__ = ["Message", "Receive", "Scope", "Send", "last_event_id", "request_of", "scope_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def scope_of(request_or_scope: object) -> Scope:
    scope = getattr(request_or_scope, "scope", request_or_scope)
    if not isinstance(scope, MutableMapping):
        raise TypeError(f"expected an ASGI scope or a request with .scope, not {scope!r}")
    return scope


def request_of(scope: Scope, body: bytes = b"") -> Request:
    """The API's request for an ASGI scope; its path is the route's, under any mount point."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = value if name not in headers else f"{headers[name]}, {value}"
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    request = Request.parse_target(
        scope.get("method", "GET"),
        f"{_route_path(scope)}?{query}",
        headers,
        str(client[0]) if client else "",
    )
    request.body = body
    request.http_version = str(scope.get("http_version", "1.1"))
    return request


def last_event_id(request_or_scope: object) -> str | None:
    """Where the client wants to resume: its `Last-Event-ID` header, else `?last_event_id=`.

    Takes an ASGI scope or anything with a `.scope` (a Starlette/FastAPI `Request`).
    """
    return api.last_event_id(request_of(scope_of(request_or_scope)))


def _route_path(scope: Scope) -> str:
    # Under a Starlette Mount `path` is the full path and `root_path` the mount point.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path
