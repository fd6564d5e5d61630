"""`ssehub serve`'s settings: the API's, and the native server's own."""

from __future__ import annotations

from dataclasses import dataclass, field

from ssehub._fanout import WRITE_INTERVAL
from ssehub.api import ApiConfig, Handler
from ssehub.api._hosts import default_hosts
from ssehub.auth import Policy
from ssehub.hub import Hub

__all__ = ["ServerConfig"]


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "memory"  # a URL: see ssehub.backends.backend_from_url
    history: int = 1000
    history_ttl: float | None = 3600.0
    write_interval: float = WRITE_INTERVAL
    heartbeat: float = 15.0
    retry: int = 3000
    cors_origins: tuple[str, ...] = ()
    cors_credentials: bool = False
    # Host names answered (DNS rebinding): these, or by default loopback names when bound to
    # loopback and any name otherwise (see ssehub.api._hosts).
    allowed_hosts: tuple[str, ...] = ()
    console: bool = True
    max_connections: int = 10_000
    max_client_connections: int = 1000  # per peer address (trusted proxies exempt)
    # Proxies whose X-Forwarded-For is believed, and which are not limited per address (a
    # proxy carries many clients): by default this machine, where nginx usually runs.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    max_buffer_bytes: int = 1024 * 1024
    idle_timeout: float = 60.0
    shutdown_grace: float = 1.0
    # Listen with SO_REUSEPORT, so that several processes share the port (`--workers`).
    reuse_port: bool = False
    # Who may publish and read (see ssehub.api._access): a JWT policy; without one, publishing
    # from loopback only. /metrics from anywhere with the metrics token, else loopback only.
    policy: Policy | None = None
    metrics_token: str | None = None
    metrics_topics: int = 0  # per-topic history series for the N largest topics
    max_topics: int = 100_000  # topics with history, on every backend
    # One line per request (for a stream, when it ends) on the `ssehub.access` logger.
    access_log: bool = False
    log_level: str = "info"  # debug, info, warning, error
    log_format: str = "text"  # text, or json: one object per line (see ssehub._logging)
    extra_routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    # Mercure's active subscriptions (ssehub.mercure): updates on connect and disconnect, and
    # the subscriptions API.
    subscriptions: bool = False

    def new_hub(self) -> Hub:
        """A hub with this configuration's backend, history and write interval."""
        return Hub(
            self.backend,
            max_topics=self.max_topics,
            history=self.history,
            history_ttl=self.history_ttl,
            write_interval=self.write_interval,
        )

    def api_config(self) -> ApiConfig:
        return ApiConfig(
            retry=self.retry,
            heartbeat=self.heartbeat,
            cors_origins=self.cors_origins,
            cors_credentials=self.cors_credentials,
            allowed_hosts=default_hosts(self.host, self.allowed_hosts),
            max_body_bytes=self.max_body_bytes,
            console=self.console,
            extra_routes=self.extra_routes,
            policy=self.policy,
            metrics_token=self.metrics_token,
            metrics_topics=self.metrics_topics,
            trusted_proxies=frozenset(self.trusted_proxies),
        )
