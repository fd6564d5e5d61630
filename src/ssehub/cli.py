"""The `ssehub` command: serve | listen | publish."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ssehub import __version__
from ssehub._cli_remote import add_listen_parser, add_publish_parser
from ssehub._fanout import WRITE_INTERVAL

if TYPE_CHECKING:
    from ssehub.auth import Policy
    from ssehub.server import ServerConfig

__all__ = ["main"]

_N = TypeVar("_N", int, float)


def _serve(args: argparse.Namespace) -> int:
    from ssehub.backends import StoreUnavailable, backend_from_url
    from ssehub.server import ServerConfig

    config = ServerConfig(
        host=args.host,
        port=args.port,
        backend=args.backend,
        history=args.history,
        history_ttl=args.history_ttl or None,
        write_interval=args.write_interval,
        heartbeat=args.heartbeat,
        retry=args.retry,
        cors_origins=tuple(args.cors_origin),
        cors_credentials=args.cors_credentials,
        allowed_hosts=tuple(args.allowed_host),
        trusted_proxies=tuple(args.trusted_proxy or ("127.0.0.1", "::1")),
        max_client_connections=args.max_client_connections,
        max_connections=args.max_connections,
        max_header_bytes=args.max_header_bytes,
        max_body_bytes=args.max_body_bytes,
        max_buffer_bytes=args.max_buffer_bytes,
        idle_timeout=args.idle_timeout,
        metrics_token=args.metrics_token,
        metrics_topics=args.metrics_topics,
        max_topics=args.max_topics,
        subscriptions=args.subscriptions,
    )
    try:
        config.policy = _policy(args)
    except (ValueError, OSError) as error:
        print(f"ssehub serve: error: {error}", file=sys.stderr)
        return 2
    demo = args.demo or args.command == "demo"
    try:
        backend_from_url(config.backend)
    except ValueError as error:
        print(f"ssehub serve: error: --backend: {error}", file=sys.stderr)
        return 2
    try:
        if args.workers == 1:
            _serve_one(config, demo)
            return 0
        if not config.backend.startswith(("redis://", "rediss://")):
            print(
                f"ssehub serve: error: --workers {args.workers} needs a backend that processes "
                f"share (redis://host:port/db); {config.backend.partition(':')[0]} history "
                "lives in one process",
                file=sys.stderr,
            )
            return 2
        from ssehub.server._workers import serve_workers

        def run_worker(port: int, ready: Callable[[str, int], None]) -> None:
            config.port = port
            config.reuse_port = True
            _serve_one(config, demo, ready)

        return serve_workers(
            config.host, config.port, args.workers, config.shutdown_grace, run_worker
        )
    except StoreUnavailable as error:
        print(f"ssehub serve: error: {error}", file=sys.stderr)
        return 1


def _serve_one(
    config: ServerConfig, demo: bool, ready: Callable[[str, int], None] | None = None
) -> None:
    from ssehub.hub import Hub
    from ssehub.server import serve

    hub = config.new_hub()
    background: tuple[Callable[[Hub], Awaitable[None]], ...] = ()
    if demo:
        from ssehub.demo import demo_feeds, demo_routes

        config.extra_routes.update(demo_routes(hub))
        background = (demo_feeds,)
    if ready is None:
        serve(config, hub=hub, background=background)
    else:
        serve(config, hub=hub, background=background, ready=ready)


def _non_negative(kind: Callable[[str], _N]) -> Callable[[str], _N]:
    def parse(text: str) -> _N:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid value" message
    return parse


def _policy(args: argparse.Namespace) -> Policy | None:
    """The JWT policy the options describe, or None without any key."""
    if not (args.jwt_key or args.publisher_jwt_key or args.subscriber_jwt_key):
        return None
    from ssehub.auth import Policy

    return Policy(
        args.jwt_key,
        args.jwt_algorithm,
        publisher_key=args.publisher_jwt_key,
        publisher_algorithm=args.publisher_jwt_algorithm,
        subscriber_key=args.subscriber_jwt_key,
        subscriber_algorithm=args.subscriber_jwt_algorithm,
        allow_anonymous=args.allow_anonymous,
        cookie_name=args.cookie_name,
    )


def _token(args: argparse.Namespace) -> int:
    from ssehub.auth import mint_token

    try:
        token = mint_token(
            args.key,
            args.algorithm,
            publish=args.publish,
            subscribe=args.subscribe,
            ttl=args.ttl or None,
        )
    except (ValueError, OSError) as error:
        print(f"ssehub token: error: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _add_token_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token",
        help="mint a JWT with Mercure's claims (for development and tests)",
        description="Print a JWT whose mercure claim grants publishing to and receiving the "
        "private events of the given topic selectors (*, an exact topic, a URI template).",
    )
    token.add_argument(
        "--key",
        default=os.environ.get("SSEHUB_JWT_KEY"),
        required="SSEHUB_JWT_KEY" not in os.environ,
        help="HMAC secret, or PEM private key, inline or @path (env SSEHUB_JWT_KEY)",
    )
    token.add_argument("--algorithm", default="HS256", help="default HS256")
    token.add_argument("--publish", action="append", default=[], metavar="SELECTOR")
    token.add_argument("--subscribe", action="append", default=[], metavar="SELECTOR")
    token.add_argument(
        "--ttl",
        type=_non_negative(float),
        default=3600.0,
        help="seconds until it expires (0: never; default 3600)",
    )
    token.set_defaults(func=_token)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {text}")
    return value


def _add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        aliases=["demo"],
        help="run the hub: publish over HTTP, subscribe with EventSource (demo: with --demo)",
        description="Run an SSE hub: GET /events?topic=T streams, POST /publish publishes. "
        "`ssehub demo` is `ssehub serve --demo`.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--backend",
        default=os.environ.get("SSEHUB_BACKEND", "memory"),
        metavar="URL",
        help="where history lives: memory, sqlite:///path.db, redis://host:port/db "
        "(env SSEHUB_BACKEND)",
    )
    serve.add_argument(
        "--history", type=_non_negative(int), default=1000, help="events kept per topic"
    )
    serve.add_argument(
        "--history-ttl",
        type=_non_negative(float),
        default=3600.0,
        help="seconds an event is kept (0: forever)",
    )
    serve.add_argument(
        "--write-interval",
        type=_non_negative(float),
        default=WRITE_INTERVAL,
        help="while events keep coming, seconds between writes to a stream (0: every loop turn)",
    )
    serve.add_argument("--heartbeat", type=float, default=15.0, help="seconds between heartbeats")
    serve.add_argument("--retry", type=int, default=3000, help="reconnect delay hint (ms)")
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow this browser origin (repeatable; '*' allows any)",
    )
    serve.add_argument(
        "--cors-credentials",
        action="store_true",
        help="let listed origins send cookies (Access-Control-Allow-Credentials)",
    )
    serve.add_argument(
        "--subscriptions",
        action="store_true",
        help="Mercure's active subscriptions: updates on connect and disconnect, and "
        "GET /.well-known/mercure/subscriptions",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer (repeatable; default: loopback names when bound to "
        "loopback, else any)",
    )
    serve.add_argument(
        "--max-topics",
        type=_positive_int,
        default=100_000,
        help="topics with history; a publish that would add one more gets 503",
    )
    serve.add_argument(
        "--metrics-topics",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="per-topic history series in /metrics for the N largest topics (0: none)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=10_000,
        help="connections served (16 more answer /healthz and /metrics only)",
    )
    serve.add_argument(
        "--max-client-connections",
        type=_positive_int,
        default=1000,
        help="connections one address may hold (--trusted-proxy addresses exempt)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a proxy whose X-Forwarded-For names the client, not limited per address "
        "(repeatable; default: 127.0.0.1 and ::1)",
    )
    serve.add_argument("--max-header-bytes", type=int, default=16 * 1024)
    serve.add_argument("--max-body-bytes", type=int, default=1024 * 1024)
    serve.add_argument(
        "--max-buffer-bytes",
        type=int,
        default=1024 * 1024,
        help="unsent bytes after which a slow subscriber is dropped",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds a connection may take to send a request (streams are exempt)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="hub processes sharing the port (SO_REUSEPORT); more than 1 needs --backend redis://",
    )
    serve.add_argument(
        "--jwt-key",
        default=os.environ.get("SSEHUB_JWT_KEY"),
        metavar="KEY",
        help="HMAC secret or PEM public key, inline or @path: publishing and reading need a "
        "JWT (env SSEHUB_JWT_KEY)",
    )
    serve.add_argument("--jwt-algorithm", default="HS256", help="the only algorithm accepted")
    serve.add_argument("--publisher-jwt-key", metavar="KEY", help="a key for publishers only")
    serve.add_argument("--publisher-jwt-algorithm", metavar="ALG")
    serve.add_argument("--subscriber-jwt-key", metavar="KEY", help="a key for subscribers only")
    serve.add_argument("--subscriber-jwt-algorithm", metavar="ALG")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="subscribers without a token get public events",
    )
    serve.add_argument(
        "--cookie-name",
        default="mercureAuthorization",
        help="the cookie a browser's token is read from",
    )
    serve.add_argument(
        "--metrics-token",
        default=os.environ.get("SSEHUB_METRICS_TOKEN"),
        metavar="TOKEN",
        help="serve /metrics to anyone sending this bearer token (else to loopback only)",
    )
    serve.add_argument("--demo", action="store_true", help="also run the demo pages and feeds")
    serve.set_defaults(func=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssehub", description="Server-Sent Events for Python.")
    parser.add_argument("--version", action="version", version=f"ssehub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve_parser(commands)
    add_listen_parser(commands)
    add_publish_parser(commands)
    _add_token_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
