"""Cross-origin access: which browser origins may read streams and publish."""

from __future__ import annotations

from ssehub.api._messages import HTTPError, Request, Response

__all__ = ["Cors"]

_ALLOWED_HEADERS = "Content-Type, Last-Event-ID, Cache-Control, Authorization"


class Cors:
    """The origins allowed (`--cors-origin`, repeatable; `*` allows any)."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(origins)
        self._any = "*" in self.origins

    def allows(self, origin: str) -> bool:
        return self._any or origin in self.origins

    def headers(self, request: Request) -> list[tuple[str, str]]:
        """What an answer to `request` carries so that its origin may read it."""
        if not self.origins:
            return []
        origin = request.headers.get("origin")
        if origin is None or not self.allows(origin):
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is None or not self.allows(origin):
            raise HTTPError(403, f"origin {origin!r} is not allowed (see --cors-origin)")
        return Response(
            204,
            content_type="",
            headers=[
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ("Access-Control-Allow-Headers", _ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ],
        )
