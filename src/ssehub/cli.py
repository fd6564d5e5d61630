"""The `ssehub` command: serve | demo | listen | publish | token."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, NoReturn, TypeVar, cast

from ssehub import __version__
from ssehub._cli_remote import add_listen_parser, add_publish_parser
from ssehub._settings import SettingsError, add_serve_options, resolve

if TYPE_CHECKING:
    from ssehub.auth import Policy
    from ssehub.server import ServerConfig

__all__ = ["main"]

_N = TypeVar("_N", int, float)


def _serve(args: argparse.Namespace) -> int:
    from ssehub.backends import StoreUnavailable, backend_from_url

    try:
        from ssehub.server import ServerConfig
        from ssehub.server._app import CannotListen
    except ModuleNotFoundError as error:  # the core install has no HTTP server
        if error.name != "httptools":
            raise
        print(
            "ssehub serve: error: the hub's server is not installed: pip install 'ssehub[server]'",
            file=sys.stderr,
        )
        return 1

    command = f"ssehub {args.command}"
    try:
        settings = argparse.Namespace(**resolve(args))
    except SettingsError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2
    config = ServerConfig(
        host=settings.host,
        port=settings.port,
        backend=settings.backend,
        history=settings.history,
        history_ttl=settings.history_ttl or None,
        write_interval=settings.write_interval,
        heartbeat=settings.heartbeat,
        retry=settings.retry,
        cors_origins=settings.cors_origin,
        cors_credentials=settings.cors_credentials,
        subscriptions=settings.subscriptions,
        allowed_hosts=settings.allowed_host,
        trusted_proxies=settings.trusted_proxy,
        max_client_connections=settings.max_client_connections,
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        max_buffer_bytes=settings.max_buffer_bytes,
        idle_timeout=settings.idle_timeout,
        metrics_token=settings.metrics_token,
        metrics_topics=settings.metrics_topics,
        max_topics=settings.max_topics,
        access_log=settings.access_log,
        log_level=settings.log_level,
        log_format=settings.log_format,
    )
    try:
        config.policy = _policy(settings)
    except (ValueError, OSError) as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:  # an extra that is not installed (jwt)
        print(f"{command}: error: {error}", file=sys.stderr)
        return 1
    demo = settings.demo or args.command == "demo"
    try:
        backend_from_url(config.backend)
    except ValueError as error:
        print(f"{command}: error: --backend: {error}", file=sys.stderr)
        return 2
    try:
        if settings.workers == 1:
            _serve_one(config, demo)
            return 0
        if not config.backend.startswith(("redis://", "rediss://")):
            print(
                f"{command}: error: --workers {settings.workers} needs a backend that processes "
                f"share (redis://host:port/db); {config.backend.partition(':')[0]} history "
                "lives in one process",
                file=sys.stderr,
            )
            return 2
        from ssehub._logging import configure_logging
        from ssehub.server._app import announce
        from ssehub.server._workers import serve_workers

        configure_logging(config.log_level, config.log_format)  # the parent's own lines

        def run_worker(port: int, ready: Callable[[str, int], None]) -> None:
            config.port = port
            config.reuse_port = True
            _serve_one(config, demo, ready)

        return serve_workers(
            config.host,
            config.port,
            settings.workers,
            config.shutdown_grace,
            run_worker,
            partial(announce, config, demos=demo, workers=settings.workers),
        )
    except (StoreUnavailable, CannotListen) as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 1


def _serve_one(
    config: ServerConfig, demo: bool, ready: Callable[[str, int], None] | None = None
) -> None:
    from ssehub.hub import Hub
    from ssehub.server import serve
    from ssehub.server._app import announce

    hub = config.new_hub()
    background: tuple[Callable[[Hub], Awaitable[None]], ...] = ()
    if demo:
        from ssehub.demo import demo_feeds, demo_routes

        config.extra_routes.update(demo_routes(hub))
        background = (demo_feeds,)
    if ready is None:
        ready = partial(announce, config, demos=demo)
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


def _add_serve_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`serve`, and `demo`: the same options with the demos on. Each is a parser of its own,
    so that each one's --help and errors name it."""
    epilog = (
        "Every option can also come from its environment variable or from the TOML file "
        "named by --config (keys named like the flags, with - or _); a flag wins over the "
        "environment, the environment over the file, the file over the default."
    )
    serve = commands.add_parser(
        "serve",
        help="run the hub: publish over HTTP, subscribe with EventSource",
        description="Run an SSE hub: GET /events?topic=T streams, POST /publish publishes.",
        epilog=epilog,
    )
    add_serve_options(serve)
    demo = commands.add_parser(
        "demo",
        help="ssehub serve --demo: the hub with its demo pages and feeds",
        description="Run an SSE hub with the demo pages and their feeds (ssehub serve --demo).",
        epilog=epilog,
    )
    add_serve_options(demo, skip=("demo",))
    for parser in (serve, demo):
        parser.set_defaults(func=_serve)


class _Parser(argparse.ArgumentParser):
    """Errors in one line, as every bad setting of `ssehub serve` is (exit code 2)."""

    subcommands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> _Parser:
    parser = _Parser(prog="ssehub", description="Server-Sent Events for Python.")
    parser.add_argument("--version", action="version", version=f"ssehub {__version__}")
    # Subcommands' parsers are _Parsers too (argparse makes them of the parent's class).
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    _add_serve_parsers(commands)
    add_listen_parser(commands)
    add_publish_parser(commands)
    _add_token_parser(commands)
    parser.subcommands = commands.choices
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand's parser, which knows the options it lacks
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
