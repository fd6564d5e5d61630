"""`ssehub serve`: the listening socket, shared server state, heartbeats, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from ssehub._logging import configure_logging
from ssehub.api import HEARTBEAT, Api, ErrorLog, Traffic, is_loopback
from ssehub.api._hosts import host_allowed
from ssehub.auth import AuthError, find_token
from ssehub.hub import Hub
from ssehub.mercure import mount as mount_mercure
from ssehub.server._config import ServerConfig
from ssehub.server._protocol import HttpProtocol, PublishGroup

__all__ = ["CannotListen", "ServerState", "announce", "run", "serve"]

log = logging.getLogger("ssehub.server")

_GRANTED_SIZE = 10_000  # remembered fast-path decisions; all forgotten when full
#: Connections admitted past --max-connections, for /healthz and /metrics only.
RESERVE = 16
# What to do about the commonest reasons a socket cannot listen.
_LISTEN_ADVICE = {
    errno.EADDRINUSE: "another process listens there: stop it or pick another --port",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a port >= 1024",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address: check --host",
}


class CannotListen(Exception):
    """The server's socket could not listen (port in use, permission denied, no such address);
    the message is one line that says why and what to do."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        # asyncio's own strerror repeats the address; the errno's text says it plainly.
        reason = (os.strerror(error.errno) if error.errno else str(error)).lower()
        advice = _LISTEN_ADVICE.get(error.errno or 0)
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}" + (f" ({advice})" if advice else "")
        )


@dataclass(eq=False)
class ServerState:
    """What every connection of one server shares."""

    hub: Hub
    config: ServerConfig
    connections: set[HttpProtocol] = field(default_factory=set)
    closing: bool = False
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)
    traffic: Traffic = field(default_factory=Traffic)
    errors: ErrorLog = field(default_factory=lambda: ErrorLog(log))
    api: Api = field(init=False)
    publish_group: PublishGroup = field(init=False)
    # (Authorization header, topic) -> until when a fast-path publish is known to be allowed.
    _granted: dict[tuple[str | None, str], float] = field(init=False, default_factory=dict)
    _hosts_served: set[str] = field(init=False, default_factory=set)
    per_client: dict[str, int] = field(init=False, default_factory=dict)  # connections held
    per_client_exempt: frozenset[str] = field(init=False)
    now: Callable[[], float] = field(init=False)  # the event loop's clock

    def __post_init__(self) -> None:
        self.now = asyncio.get_running_loop().time
        self.api = Api(self.hub, self.config.api_config(), self.traffic)
        mount_mercure(self.api, subscriptions=self.config.subscriptions)
        self.per_client_exempt = frozenset(self.config.trusted_proxies)
        self.publish_group = PublishGroup(self)

    def connection_closed(self) -> None:
        if self.closing and not self.connections:
            self.all_closed.set()

    def admit(self, client: str) -> str | None:
        """Why a new connection from `client` is refused (None: admitted), and count it.

        Up to --max-connections connections are served; a few more (`RESERVE`) are admitted
        for /healthz and /metrics only, so a full hub still answers its load balancer. One
        address may hold at most --max-client-connections of them, so one client cannot take
        every slot; --trusted-proxy addresses (a proxy carries many clients; by default this
        machine's loopback addresses) are not limited per address.
        """
        config = self.config
        if self.closing:
            return "the hub is shutting down"
        if len(self.connections) >= config.max_connections + RESERVE:
            return "too many connections; retry later"
        if client in self.per_client_exempt or not client:
            return None
        held = self.per_client.get(client, 0)
        if held >= config.max_client_connections:
            return (
                f"too many connections from {client} "
                f"(--max-client-connections {config.max_client_connections}); retry later"
            )
        self.per_client[client] = held + 1
        return None

    def release(self, client: str) -> None:
        held = self.per_client.get(client)
        if held is not None:
            if held <= 1:
                del self.per_client[client]
            else:
                self.per_client[client] = held - 1

    def fast_path_for(self, client: str) -> bool:
        """Whether a connection from `client` may publish through the C fast path: always under
        a policy (which then judges each publish: `may_publish_plain`), else only from
        loopback, the only peers that may publish without one."""
        return self.config.policy is not None or is_loopback(client)

    def host_served(self, host: str) -> bool:
        """Whether the API answers this Host (its allowlist), for the fast path: remembered,
        as a publisher names the same host again and again."""
        if host in self._hosts_served:
            return True
        allowed = self.api.config.allowed_hosts
        if allowed is not None and not host_allowed(host, allowed):
            return False
        if len(self._hosts_served) < 64:
            self._hosts_served.add(host)
        return True

    def may_publish_plain(self, authorization: str | None, topic: str) -> bool:
        """Under a policy: whether a fast-path publish with this Authorization header may go
        out; if not, the general path reads it again and answers it (401 or 403).

        The policy decides; a yes is remembered for that header and topic until the token
        expires, as the policy remembers a verified token, since a publisher sends the same
        token to the same topic again and again.
        """
        key = (authorization, topic)
        until = self._granted.get(key)
        if until is not None and time.time() < until:
            return True
        policy = self.config.policy
        assert policy is not None
        found = find_token({"authorization": authorization} if authorization else {}, {})
        try:
            grants = policy.publisher(found.token if found else None)
        except AuthError:
            return False
        if not grants.may_publish(topic):
            return False
        if len(self._granted) >= _GRANTED_SIZE:
            self._granted.clear()
        self._granted[key] = math.inf if grants.exp is None else grants.exp + policy.leeway
        return True


async def _heartbeats(state: ServerState) -> None:
    while True:
        await asyncio.sleep(state.config.heartbeat)
        for connection in tuple(state.connections):
            connection.write_heartbeat(HEARTBEAT)


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
    _open_file_limit(config.max_connections + RESERVE + 64)
    hub = hub or config.new_hub()
    await hub.start()
    state = ServerState(hub, config)
    try:
        server = await loop.create_server(
            lambda: HttpProtocol(state),
            config.host,
            config.port,
            reuse_address=True,
            reuse_port=config.reuse_port or None,
            backlog=4096,
        )
    except OSError as error:
        await hub.close()
        raise CannotListen(config.host, config.port, error) from None
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


def _open_file_limit(needed: int) -> None:
    """Raise the soft open-file limit to what --max-connections needs (up to the hard limit),
    or say in one line that connections past it will be refused by the kernel, not the hub."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open-file limit (%d) is below what --max-connections needs (%d): raise it "
            "(ulimit -n, LimitNOFILE=) or lower --max-connections",
            soft,
            needed,
        )


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


def announce(
    config: ServerConfig, host: str, port: int, *, demos: bool = False, workers: int = 1
) -> None:
    """The start-up line: where the hub listens, its pages and its backend."""
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    pages = [f"{workers} workers"] if workers > 1 else []
    if config.console:
        pages.append(f"console {base}/")
    if demos:
        pages.append(f"demos {base}/demos/")
    pages += [f"metrics {base}/metrics", f"backend {_without_password(config.backend)}"]
    log.info("ssehub serving on %s/ (%s)", base, ", ".join(pages))
    if config.policy is None:
        log.info("no --jwt-key: publishes are accepted from loopback addresses only")


def _without_password(url: str) -> str:
    """A backend URL fit for a log: redis://user:secret@host/0 -> redis://user:***@host/0."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def serve(config: ServerConfig, **kwargs: object) -> None:
    """Run the hub server in this process, on uvloop where available.

    Raises `CannotListen` when the socket cannot listen.
    """
    configure_logging(config.log_level, config.log_format)
    kwargs.setdefault("ready", partial(announce, config))
    coroutine = run(config, **kwargs)  # type: ignore[arg-type]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
