"""Which browser pages may use the hub: CORS for reading, and the rules that keep a page on
another site from publishing behind its user's back.

- `--cors-origin ORIGIN` (repeatable) lets that page read answers; `*` lets any page read public
  answers, and is sent as `*` (never echoed), so no credentials go with it.
- `--cors-credentials` adds `Access-Control-Allow-Credentials: true` for explicitly listed
  origins: a page may then send cookies (a `mercureAuthorization` cookie) with EventSource's
  `withCredentials` or fetch's `credentials: "include"`.
- A publish from a browser on another site is refused unless its origin is listed: a "simple"
  cross-site form POST needs no preflight, so CORS alone would let any page the user visits
  publish through a hub on their machine. Browsers say where a request comes from in `Origin`
  (and `Sec-Fetch-Site`); a request with neither is not a browser's cross-site request.
"""

from __future__ import annotations

from ssehub.api._messages import HTTPError, Request, Response

__all__ = ["Cors"]

_ALLOWED_HEADERS = "Content-Type, Last-Event-ID, Cache-Control, Authorization"


class Cors:
    """The origins allowed (`--cors-origin`, repeatable; `*` allows any)."""

    def __init__(self, origins: tuple[str, ...], credentials: bool = False) -> None:
        self.origins = frozenset(origins)
        self._any = "*" in self.origins
        self.credentials = credentials

    def allows(self, origin: str) -> bool:
        return self._any or origin in self.origins

    def headers(self, request: Request) -> list[tuple[str, str]]:
        """What an answer to `request` carries so that its origin may read it."""
        if not self.origins:
            return []
        origin = request.headers.get("origin")
        if origin is None:
            return []
        if origin in self.origins:
            allowed = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if self.credentials:
                allowed.append(("Access-Control-Allow-Credentials", "true"))
            return allowed
        if self._any:
            return [("Access-Control-Allow-Origin", "*")]
        return []

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

    def check_publisher(self, request: Request) -> None:
        """403 for a publish a browser sends from a page of another site, unless allowed."""
        origin = request.headers.get("origin")
        site = request.headers.get("sec-fetch-site")
        if origin is not None:  # "null" too: a sandboxed or file page, never allowed
            if origin in self.origins or _same_origin(origin, request):
                return
        elif site is None or site in ("same-origin", "none"):
            return  # not a browser's cross-site request (curl, a server, the hub's own pages)
        raise HTTPError(
            403,
            f"a publish from the page {origin or 'of another site'!r} is refused: "
            "allow its origin with --cors-origin",
        )


def _same_origin(origin: str, request: Request) -> bool:
    """The page was served by this very host (the console publishing to its own hub)."""
    host = request.headers.get("host", "")
    return origin.partition("://")[2] == host and host != ""
