"""`ssehub serve`'s options, declared once.

Each `Option` is a flag (`--history-ttl`), an environment variable (`SSEHUB_HISTORY_TTL`) and a
key of the TOML file named by `--config` (`history_ttl` or `history-ttl`), so the three cannot
drift apart. A value is taken from the first of: the flag, the environment, the file, the
default. Every value, wherever it comes from, passes the same check, and a bad one is one line
naming where it came from (`SettingsError`).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssehub._fanout import WRITE_INTERVAL

__all__ = [
    "CONFIG_ENV",
    "SERVE_OPTIONS",
    "Option",
    "SettingsError",
    "add_serve_options",
    "resolve",
]

CONFIG_ENV = "SSEHUB_CONFIG"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A bad setting; the message names the flag, variable or file key, and what is wrong."""


@dataclass(frozen=True, slots=True)
class Option:
    """One `serve` option: its flag is `--name`, its variable `SSEHUB_NAME`, its key `name`."""

    name: str
    type: type[Any]  # int, float, str or bool
    default: Any
    help: str
    metavar: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # A list: the flag repeats, the variable separates values with commas, the key is an array.
    repeated: bool = False
    shown_default: str | None = None  # for --help, where the default needs words

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def shown_metavar(self) -> str:
        """How --help names the value: a count N, seconds S, one of the choices, or a word."""
        if self.metavar is not None:
            return self.metavar
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        return {int: "N", float: "S"}.get(self.type, self.dest.upper())

    @property
    def env(self) -> str:
        return "SSEHUB_" + self.dest.upper()

    def parse(self, text: str) -> Any:
        """A value from text (a flag or a variable); ArgumentTypeError says what is wrong."""
        if self.type is bool:
            word = text.strip().lower()
            if word not in _TRUE | _FALSE:
                raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
            return word in _TRUE
        if self.type is str:
            return self.check(text)
        try:
            value = self.type(text)
        except ValueError:
            kind = "an integer" if self.type is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, not {text!r}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise argparse.ArgumentTypeError(f"must be >= {self.minimum:g}, not {value}")
        if self.maximum is not None and value > self.maximum:
            raise argparse.ArgumentTypeError(f"must be <= {self.maximum:g}, not {value}")
        if self.choices and value not in self.choices:
            raise argparse.ArgumentTypeError(
                f"must be one of {', '.join(self.choices)}, not {value!r}"
            )
        return value

    def from_toml(self, value: object) -> Any:
        """A value from the TOML file, whose own types must match this option's."""
        if self.repeated:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise argparse.ArgumentTypeError("expected a string or an array of strings")
            return tuple(self.check(item) for item in items)
        # bool is a subclass of int: `history = true` is not a number.
        accepted = (int, float) if self.type is float else (self.type,)
        if isinstance(value, bool) is not (self.type is bool) or not isinstance(value, accepted):
            kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
            raise argparse.ArgumentTypeError(f"expected {kind[self.type]}, not {value!r}")
        return self.check(self.type(value))

    def described(self) -> str:
        """The help line: what it does, its default, its variable."""
        if self.shown_default is not None:
            default = self.shown_default
        elif self.type is bool:
            default = "on" if self.default else "off"
        elif self.repeated:
            default = ", ".join(self.default) or "none"
        elif self.default is None:
            default = "none"
        else:
            default = f"{self.default:g}" if isinstance(self.default, float) else str(self.default)
        return f"{self.help} [default: {default}; env {self.env}]"


SERVE_OPTIONS: tuple[Option, ...] = (
    Option("host", str, "127.0.0.1", "address to listen on"),
    Option("port", int, 8000, "port to listen on (0: any free port)", minimum=0, maximum=65535),
    Option(
        "backend",
        str,
        "memory",
        "where history lives: memory, sqlite:///path.db, redis://host:port/db",
        metavar="URL",
    ),
    Option(
        "workers",
        int,
        1,
        "hub processes sharing the port (SO_REUSEPORT); more than 1 needs --backend redis://",
        minimum=1,
    ),
    Option("history", int, 1000, "events kept per topic", minimum=0),
    Option("history-ttl", float, 3600.0, "seconds an event is kept (0: forever)", minimum=0),
    Option(
        "max-topics",
        int,
        100_000,
        "topics with history; a publish that would add one more gets 503",
        minimum=1,
    ),
    Option(
        "write-interval",
        float,
        WRITE_INTERVAL,
        "while events keep coming, seconds between writes to a stream (0: every loop turn)",
        minimum=0,
    ),
    Option("heartbeat", float, 15.0, "seconds between heartbeats", minimum=0.001),
    Option("retry", int, 3000, "reconnect delay hint sent to clients", metavar="MS", minimum=0),
    Option(
        "cors-origin",
        str,
        (),
        "allow this browser origin (repeatable; '*' allows any)",
        metavar="ORIGIN",
        repeated=True,
    ),
    Option(
        "cors-credentials",
        bool,
        False,
        "let listed origins send cookies (Access-Control-Allow-Credentials)",
    ),
    Option(
        "subscriptions",
        bool,
        False,
        "Mercure's active subscriptions: updates on connect and disconnect, and "
        "GET /.well-known/mercure/subscriptions",
    ),
    Option(
        "allowed-host",
        str,
        (),
        "a Host name to answer (repeatable)",
        metavar="NAME",
        repeated=True,
        shown_default="loopback names when bound to loopback, else any",
    ),
    Option(
        "max-connections",
        int,
        10_000,
        "connections served (16 more answer /healthz and /metrics only)",
        minimum=1,
    ),
    Option(
        "max-client-connections",
        int,
        1000,
        "connections one address may hold (--trusted-proxy addresses exempt)",
        minimum=1,
    ),
    Option(
        "trusted-proxy",
        str,
        ("127.0.0.1", "::1"),
        "a proxy whose X-Forwarded-For names the client, not limited per address (repeatable)",
        metavar="ADDRESS",
        repeated=True,
    ),
    Option("max-header-bytes", int, 16 * 1024, "request line and headers, at most", minimum=1),
    Option("max-body-bytes", int, 1024 * 1024, "request body, at most", minimum=0),
    Option(
        "max-buffer-bytes",
        int,
        1024 * 1024,
        "unsent bytes after which a slow subscriber is dropped",
        minimum=1,
    ),
    Option(
        "idle-timeout",
        float,
        60.0,
        "seconds a connection may take to send a request (streams are exempt)",
        minimum=0.001,
    ),
    Option(
        "jwt-key",
        str,
        None,
        "HMAC secret or PEM public key, inline or @path: publishing and reading need a JWT",
        metavar="KEY",
    ),
    Option("jwt-algorithm", str, "HS256", "the only algorithm accepted", metavar="ALG"),
    Option("publisher-jwt-key", str, None, "a key for publishers only", metavar="KEY"),
    Option(
        "publisher-jwt-algorithm",
        str,
        None,
        "its algorithm",
        metavar="ALG",
        shown_default="--jwt-algorithm",
    ),
    Option("subscriber-jwt-key", str, None, "a key for subscribers only", metavar="KEY"),
    Option(
        "subscriber-jwt-algorithm",
        str,
        None,
        "its algorithm",
        metavar="ALG",
        shown_default="--jwt-algorithm",
    ),
    Option("allow-anonymous", bool, False, "subscribers without a token get public events"),
    Option(
        "cookie-name",
        str,
        "mercureAuthorization",
        "the cookie a browser's token is read from",
        metavar="NAME",
    ),
    Option(
        "metrics-token",
        str,
        None,
        "serve /metrics to anyone sending this bearer token (else to loopback only)",
        metavar="TOKEN",
    ),
    Option(
        "metrics-topics",
        int,
        0,
        "per-topic history series in /metrics for the N largest topics (0: none)",
        metavar="N",
        minimum=0,
    ),
    Option(
        "access-log",
        bool,
        False,
        "log one line per request, for a stream when it ends (logger ssehub.access)",
    ),
    Option(
        "log-level",
        str,
        "info",
        "the least severe log records written",
        choices=("debug", "info", "warning", "error"),
    ),
    Option(
        "log-format", str, "text", "text, or json: one object per line", choices=("text", "json")
    ),
    Option("demo", bool, False, "also run the demo pages and feeds"),
)

_BY_KEY = {option.dest: option for option in SERVE_OPTIONS}


def add_serve_options(parser: argparse.ArgumentParser, *, skip: Sequence[str] = ()) -> None:
    """The options as flags. Unset flags leave no attribute: `resolve` fills them in."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"a TOML file of these options, keys named like the flags (env {CONFIG_ENV})",
    )
    for option in SERVE_OPTIONS:
        if option.name in skip:
            continue
        flag = "--" + option.name
        if option.type is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=option.described(),
            )
            continue
        parser.add_argument(
            flag,
            type=option.parse,
            action="append" if option.repeated else "store",
            default=argparse.SUPPRESS,
            metavar=option.shown_metavar,
            help=option.described(),
        )


def resolve(flags: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Every option's value: from its flag, else its variable, else the file, else its default."""
    values = {option.dest: option.default for option in SERVE_OPTIONS}
    path = getattr(flags, "config", None) or environ.get(CONFIG_ENV)
    if path:
        values.update(_from_file(path))
    values.update(_from_environment(environ))
    for key, value in vars(flags).items():
        if key in _BY_KEY:
            values[key] = tuple(value) if _BY_KEY[key].repeated else value
    return values


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in SERVE_OPTIONS:
        text = environ.get(option.env)
        if text is None:
            continue
        try:
            if option.repeated:
                values[option.dest] = tuple(
                    option.parse(item.strip()) for item in text.split(",") if item.strip()
                )
            else:
                values[option.dest] = option.parse(text)
        except argparse.ArgumentTypeError as error:
            raise SettingsError(f"{option.env}: {error}") from None
    return values


def _from_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"--config {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not TOML: {error}") from None
    values: dict[str, Any] = {}
    for key, value in document.items():
        # Keys are the flags' names, with - or _ alike (TOML users tend to write `history_ttl`).
        option = _BY_KEY.get(key.replace("-", "_"))
        if option is None:
            raise SettingsError(
                f"{path}: unknown key {key!r} (keys are the flags of ssehub serve --help)"
            )
        if option.dest in values:
            raise SettingsError(f"{path}: {key!r} is set twice (as - and as _)")
        try:
            values[option.dest] = option.from_toml(value)
        except argparse.ArgumentTypeError as error:
            raise SettingsError(f"{path}: {key}: {error}") from None
    return values
