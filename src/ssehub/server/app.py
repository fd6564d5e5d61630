"""`ssehub serve`: the listening socket, shared server state, heartbeats, metrics, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ssehub.hub import Hub
from ssehub.server.http import HTTPError, Request, Response
from ssehub.server.protocol import HttpProtocol, PublishGroup
from ssehub.server.routes import Reply, Router, ServerConfig
from ssehub.wire import comment

__all__ = ["ServerState", "run", "serve"]

log = logging.getLogger("ssehub.server")

_HEARTBEAT = comment("heartbeat")
_PREFLIGHT_HEADERS = "Content-Type, Last-Event-ID, Cache-Control, Authorization"


@dataclass(eq=False)
class ServerState:
    """What every connection of one server shares."""

    hub: Hub
    config: ServerConfig
    connections: set[HttpProtocol] = field(default_factory=set)
    open_streams: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    closing: bool = False
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)
    router: Router = field(init=False)
    publish_group: PublishGroup = field(init=False)
    now: Callable[[], float] = field(init=False)  # the event loop's clock
    _allow_any_origin: bool = field(init=False)

    def __post_init__(self) -> None:
        self.now = asyncio.get_running_loop().time
        self.router = Router(self.hub, self.config, self.metrics)
        self.publish_group = PublishGroup(self)
        self._allow_any_origin = "*" in self.config.cors_origins

    def handle(self, request: Request) -> Reply | Awaitable[Reply]:
        if request.method == "OPTIONS":
            return self.preflight(request)
        return self.router.handle(request)

    def count_rejection(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1

    def connection_closed(self) -> None:
        if self.closing and not self.connections:
            self.all_closed.set()

    # -- CORS ---------------------------------------------------------------------------------

    def _origin_allowed(self, origin: str) -> bool:
        return self._allow_any_origin or origin in self.config.cors_origins

    def cors_headers(self, request: Request) -> list[tuple[str, str]]:
        origin = request.headers.get("origin")
        if origin is None or not self._origin_allowed(origin):
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is None or not self._origin_allowed(origin):
            raise HTTPError(403, f"origin {origin!r} is not allowed (see --cors-origin)")
        return Response(
            204,
            content_type="",
            headers=[
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ("Access-Control-Allow-Headers", _PREFLIGHT_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ],
        )

    # -- observability ------------------------------------------------------------------------

    def metrics(self) -> str:
        stats = self.hub.stats
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP ssehub_{name} {help_text}")
            lines.append(f"# TYPE ssehub_{name} {kind}")
            lines.extend(f"ssehub_{name}{labels} {value}" for labels, value in samples)

        metric("open_streams", "gauge", "Event streams open now.", [("", self.open_streams)])
        metric("connections", "gauge", "HTTP connections open now.", [("", len(self.connections))])
        metric("events_published_total", "counter", "Events published.", [("", stats.published)])
        metric("events_delivered_total", "counter", "Event deliveries.", [("", stats.delivered)])
        metric("replays_total", "counter", "Resumes served from history.", [("", stats.replays)])
        metric("resets_total", "counter", "Resumes answered with a reset.", [("", stats.resets)])
        metric(
            "slow_consumers_dropped_total",
            "counter",
            "Subscribers closed for falling behind.",
            [("", stats.slow_dropped)],
        )
        metric(
            "requests_rejected_total",
            "counter",
            "Requests answered with an error, by status.",
            [(f'{{status="{status}"}}', count) for status, count in sorted(self.rejected.items())],
        )
        metric(
            "history_events",
            "gauge",
            "Events retained per topic.",
            [
                (f'{{topic="{_label(topic)}"}}', size)
                for topic, size in sorted(self.hub.backend.history_sizes().items())
            ],
        )
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def _heartbeats(state: ServerState) -> None:
    while True:
        await asyncio.sleep(state.config.heartbeat)
        for connection in tuple(state.connections):
            connection.write_heartbeat(_HEARTBEAT)


async def _close_idle_connections(state: ServerState) -> None:
    period = min(state.config.idle_timeout / 4, 5.0)
    while True:
        await asyncio.sleep(period)
        now = state.now()
        for connection in tuple(state.connections):
            connection.close_if_idle(now)


async def run(
    config: ServerConfig,
    *,
    hub: Hub | None = None,
    background: tuple[Callable[[Hub], Awaitable[None]], ...] = (),
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT), then shut down within the grace time."""
    loop = asyncio.get_running_loop()
    hub = hub or config.new_hub()
    await hub.start()
    state = ServerState(hub, config)
    server = await loop.create_server(
        lambda: HttpProtocol(state), config.host, config.port, reuse_address=True, backlog=4096
    )
    stop = stop or asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.ensure_future(_heartbeats(state)),
        asyncio.ensure_future(_close_idle_connections(state)),
    ]
    tasks += [asyncio.ensure_future(job(hub)) for job in background]
    host, port = server.sockets[0].getsockname()[:2]
    if ready is not None:
        ready(host, port)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await _shutdown(server, state, tasks)
        await hub.close()


async def _shutdown(
    server: asyncio.base_events.Server, state: ServerState, tasks: Sequence[asyncio.Future[None]]
) -> None:
    server.close()
    state.closing = True
    state.hub.flush()  # what was published before the signal still goes out
    for task in tasks:
        task.cancel()
    for connection in tuple(state.connections):
        connection.shutdown()
    state.connection_closed()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.all_closed.wait(), state.config.shutdown_grace)
    # Peers that would not take their last bytes in time are cut off: exit is never held up.
    for connection in tuple(state.connections):
        connection.abort()
    await asyncio.sleep(0)


def serve(config: ServerConfig, **kwargs: object) -> None:
    """Run the hub server in this process, on uvloop where available."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def announce(host: str, port: int) -> None:
        print(f"ssehub serving on http://{host}:{port}/", file=sys.stderr, flush=True)

    kwargs.setdefault("ready", announce)
    coroutine = run(config, **kwargs)  # type: ignore[arg-type]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
