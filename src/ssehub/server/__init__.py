"""The native HTTP/1.1 server behind `ssehub serve` (uvloop + httptools).

It keeps only what is HTTP/1.1 and sockets: parsing, keep-alive and pipelining, publisher
pacing, the publish fast path; what each request means is `ssehub.api`'s.
"""

from ssehub.server._app import run, serve
from ssehub.server._config import ServerConfig

__all__ = ["ServerConfig", "run", "serve"]
