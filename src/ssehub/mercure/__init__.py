"""ssehub as a Mercure hub: `/.well-known/mercure` (draft-dunglas-mercure-07, Mercure 0.x).

`mount(api)` adds Mercure's routes to an `ssehub.api.Api`; the native server and the ASGI app
both call it, so `ssehub serve` and `hub.asgi_app()` speak Mercure through this one
implementation. Publishing, subscribing and authorization are the hub's own (`ssehub.api`):
the same history, ids, fan-out and backends, so an event published through `/publish` reaches
Mercure subscribers of its topic and the reverse.

`discovery_link(hub_url)` is the `Link` header value an app sends with its resources so that
Mercure clients find the hub (what Symfony's `Discovery` adds).
"""

from ssehub.mercure._discovery import HUB_PATH, discovery_link
from ssehub.mercure._routes import Mercure, mount

__all__ = ["HUB_PATH", "Mercure", "discovery_link", "mount"]
