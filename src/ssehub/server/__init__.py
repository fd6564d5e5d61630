"""The native HTTP/1.1 server behind `ssehub serve` (uvloop + httptools)."""

from ssehub.server.app import run, serve
from ssehub.server.routes import ServerConfig

__all__ = ["ServerConfig", "run", "serve"]
