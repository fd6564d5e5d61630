"""Where a request carries its token: the Authorization header, the query, or a cookie."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = ["DEFAULT_COOKIE_NAME", "FoundToken", "TokenSource", "find_token"]

#: The Mercure draft: "It is RECOMMENDED to name the cookie `mercureAuthorization`, but it may be
#: necessary to use a different name to prevent conflicts when using multiple hubs on the same
#: domain."
DEFAULT_COOKIE_NAME = "mercureAuthorization"


class TokenSource(enum.StrEnum):
    HEADER = "header"
    QUERY = "query"
    COOKIE = "cookie"


class FoundToken(NamedTuple):
    token: str
    source: TokenSource


# RFC 6265 §4.2.1: cookie-string = cookie-pair *( ";" SP cookie-pair ). A request whose Cookie
# headers were joined with ", " (how this hub's shells join repeated headers; HTTP/2 clients
# send one Cookie header per cookie) is split on "," as well: RFC 6265 §4.1.1's cookie-octet
# excludes the comma, so no well-formed cookie value contains one (nor does any JWT).
_COOKIE_SEPARATORS = re.compile(r"[;,]")


def _cookie(header: str, name: str) -> str | None:
    for pair in _COOKIE_SEPARATORS.split(header):
        key, equals, value = pair.partition("=")
        if equals and key.strip(" \t") == name:
            value = value.strip(" \t")
            # RFC 6265 §4.1.1: cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            # The first cookie of that name wins, as RFC 6265 §5.4 orders the more specific
            # path first (and as Go's Request.Cookie, which Mercure's hub uses, reads it).
            return value
    return None


def find_token(
    headers: Mapping[str, str],
    query: Mapping[str, Sequence[str]],
    cookie_name: str = DEFAULT_COOKIE_NAME,
) -> FoundToken | None:
    """The request's token and where it came from, or None when it carries none.

    `headers` has lower-case names (repeated headers joined with ", "); `query` maps each
    parameter to its values. The order is the Mercure draft's: "If an `Authorization` HTTP
    header is presented by the client, the JWS it contains MUST be used. The content of the
    `authorization` query parameter and of the cookie MUST be ignored. If an `authorization`
    query parameter is set by the client and no `Authorization` HTTP header is presented, the
    content of the query parameter MUST be used, the content of the cookie must be ignored."

    - Header: `Authorization: Bearer <token>` ("Bearer" in any case: RFC 9110 §11.1, "It uses a
      case-insensitive token to identify the authentication scheme"). An Authorization header
      of another scheme (Basic, from a proxy) carries no JWS and is passed over. The rest of the
      header is the token, as sent: two joined Bearer headers make one malformed token, refused
      later, never a guess between them.
    - Query: the first `authorization` value (as Go's `Query().Get`, which Mercure's hub uses).
    - Cookie: `cookie_name` in the Cookie header, parsed here (never raises, whatever the
      header holds: a piece without "=" is skipped).
    - An empty value at any place (`Bearer ` alone, `?authorization=`, a cookie emptied to log
      out) is no token, and the next place is looked at.
    """
    header = headers.get("authorization")
    if isinstance(header, str):
        scheme, _, credentials = header.strip(" \t").partition(" ")
        token = credentials.strip(" \t")
        if scheme.lower() == "bearer" and token:
            return FoundToken(token, TokenSource.HEADER)
    values = query.get("authorization")
    if isinstance(values, str):  # a str is a Sequence[str] too: take it whole
        values = (values,)
    if values and isinstance(values[0], str) and values[0]:
        return FoundToken(values[0], TokenSource.QUERY)
    cookies = headers.get("cookie")
    if isinstance(cookies, str):
        token = _cookie(cookies, cookie_name) or ""
        if token:
            return FoundToken(token, TokenSource.COOKIE)
    return None
