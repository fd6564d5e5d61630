"""Discovery: how a client finds the hub of a resource (draft-dunglas-mercure-07, "Discovery").

"If the publisher is a server, it SHOULD advertise the URL of one or more hubs to the
subscriber, allowing it to receive live updates when topics are updated. [...] The URL of
the hub MUST be advertised using a Link HTTP header with the rel attribute set to mercure."
"""

from __future__ import annotations

__all__ = ["HUB_PATH", "discovery_link"]

#: Where a Mercure hub is served, on ssehub as on every Mercure hub.
HUB_PATH = "/.well-known/mercure"


def discovery_link(hub_url: str = HUB_PATH) -> str:
    """The `Link` header value advertising the hub at `hub_url` (an absolute URL, or a path of
    this very host): `<https://example.com/.well-known/mercure>; rel="mercure"`."""
    if any(char in hub_url for char in '<>"\r\n\0'):
        raise ValueError(f"{hub_url!r} cannot be written in a Link header")
    return f'<{hub_url}>; rel="mercure"'
