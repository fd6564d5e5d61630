"""`ssehub listen` and `ssehub publish`: the command line's client side.

`cli.py` registers them with `add_listen_parser(commands)` and `add_publish_parser(commands)`;
each sets `func` to a function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeAlias

import httpx

from ssehub.client import EventSource, SSEError
from ssehub.wire import Event

__all__ = ["add_listen_parser", "add_publish_parser", "format_event", "listen", "publish"]

Parser: TypeAlias = argparse.ArgumentParser
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"

DEFAULT_HUB = "http://127.0.0.1:8000"
#: Lines already waiting on stdin are published together, up to this many per request.
MAX_BATCH = 500


# -- listen ---------------------------------------------------------------------------------------


def add_listen_parser(commands: Commands) -> None:
    """Register `ssehub listen URL [--topic T ...] [--last-event-id ID] [--json] [--header]`."""
    parser = _add_command(commands, listen)
    parser.add_argument("url", help="the stream, e.g. http://127.0.0.1:8000/events")
    parser.add_argument(
        "--topic", action="append", default=[], metavar="T", help="add ?topic=T (repeatable)"
    )
    parser.add_argument("--last-event-id", default="", metavar="ID", help="resume after this id")
    parser.add_argument(
        "--json", action="store_true", help='one JSON object per line: {"event", "data", "id"}'
    )
    _add_header_option(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="reconnect after this many seconds without data (default 60)",
    )


def _add_command(commands: Commands, run: Callable[[argparse.Namespace], int]) -> Parser:
    """The subcommand named after `run`, described by its docstring, running it."""
    summary, _, description = (inspect.getdoc(run) or "").partition("\n\n")
    brief = summary[:1].lower() + summary[1:].rstrip(".")  # argparse's style: "show this help"
    parser = commands.add_parser(run.__name__, help=brief, description=description)
    parser.set_defaults(func=run)
    return parser


def _add_header_option(parser: Parser) -> None:
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="add a request header, e.g. 'X-Request-Id: 7' (repeatable)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("SSEHUB_TOKEN"),
        metavar="JWT",
        help="send Authorization: Bearer JWT (env SSEHUB_TOKEN)",
    )


def format_event(event: Event, as_json: bool, topics: tuple[str, ...] = ()) -> str:
    """One event as `listen` prints it (without the newline): `[id] topics event: data`."""
    if as_json:
        fields: dict[str, Any] = {"event": event.event, "data": event.data, "id": event.id}
        if topics:
            fields["topics"] = list(topics)
        return json.dumps(fields, ensure_ascii=False)
    prefix = f"[{event.id}] " if event.id else ""
    if topics:
        prefix += ",".join(topics) + " "
    return f"{prefix}{event.event}: " + event.data.replace("\n", "\n  ")


class TopicTap:
    """The topics of each event of a stream, read off its bytes beside the decoder.

    ssehub's hub names an event's topics in `topic:` lines, a field the spec tells decoders to
    ignore ("Otherwise: the field is ignored"), so `ssehub.wire.Decoder` never returns them.
    This reads the same lines: a block that holds a `data` field is an event the decoder
    dispatches, so the topics of those blocks, queued in order, pair with the events it
    returns. `reset()` at every new connection, as the decoder starts afresh there too.
    """

    def __init__(self) -> None:
        self.ready: deque[tuple[str, ...]] = deque()
        self.reset()

    def reset(self) -> None:
        self.ready.clear()
        self._line = b""
        self._topics: list[str] = []
        self._data = False

    def feed(self, chunk: bytes) -> None:
        *lines, self._line = (self._line + chunk).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:  # the blank line that ends a block
                if self._data:
                    self.ready.append(tuple(self._topics))
                self._topics = []
                self._data = False
            elif line.startswith(b"topic:"):
                self._topics.append(line[6:].removeprefix(b" ").decode(errors="replace"))
            elif line == b"data" or line.startswith(b"data:"):
                self._data = True

    def next_topics(self) -> tuple[str, ...]:
        """The topics of the next event the decoder hands out."""
        return self.ready.popleft() if self.ready else ()


class _Tapped(httpx.SyncByteStream):
    """A response body that shows each chunk to a `TopicTap` as it is read."""

    def __init__(self, stream: httpx.SyncByteStream, tap: TopicTap) -> None:
        self._stream = stream
        self._tap = tap

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._tap.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class CommandError(Exception):
    """A failure to report on stderr: `ssehub <command>: <message>`, exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _headers(values: list[str], token: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for value in values:
        name, colon, rest = value.partition(":")
        if not colon or not name.strip():
            raise CommandError(f"--header {value!r}: expected 'Name: value'", status=2)
        headers[name.strip()] = rest.strip()
    return headers


def _run(name: str, command: Callable[[], None]) -> int:
    """Run a command's body; map the ways it can end to an exit status, quietly for Ctrl-C."""
    try:
        command()
    except CommandError as error:
        print(f"ssehub {name}: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `ssehub listen ... | head`
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def listen(args: argparse.Namespace) -> int:
    """Print the events of a stream as they arrive (reconnects and resumes).

    Connect to an event stream and print its events as they arrive, flushed one by one;
    reconnect and resume (Last-Event-ID) when the connection drops. Exits 0 when the server
    ends the stream (HTTP 204) or on Ctrl-C, 1 when the server refuses the stream.
    """
    return _run("listen", lambda: _listen(args))


def _listen(args: argparse.Namespace) -> None:
    def on_retry(delay: float, error: BaseException | None) -> None:
        if error is not None:
            detail = str(error) or type(error).__name__
            print(f"ssehub listen: {detail}; reconnecting in {delay:.3g} s", file=sys.stderr)

    tap = TopicTap()

    def on_open(response: httpx.Response) -> None:
        tap.reset()
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Tapped(response.stream, tap)

    source = EventSource(
        args.url,
        params=[("topic", topic) for topic in args.topic] or None,
        headers=_headers(args.header, args.token),
        on_open=on_open,
        last_event_id=args.last_event_id,
        timeout=args.timeout,
        on_retry=on_retry,
    )
    out = sys.stdout
    try:
        with source:
            for event in source:
                out.write(format_event(event, args.json, tap.next_topics()) + "\n")
                out.flush()
    except SSEError as error:
        raise CommandError(str(error)) from None


# -- publish --------------------------------------------------------------------------------------


def add_publish_parser(commands: Commands) -> None:
    """Register `ssehub publish [--hub URL] --topic T [--event E] [DATA | -]`."""
    parser = _add_command(commands, publish)
    parser.add_argument(
        "--hub", default=DEFAULT_HUB, metavar="URL", help=f"the hub (default {DEFAULT_HUB})"
    )
    parser.add_argument(
        "--topic",
        action="append",
        required=True,
        metavar="T",
        help="topic to publish to (repeatable: one event, many topics)",
    )
    parser.add_argument("--event", metavar="E", help="event type (default: message)")
    _add_header_option(parser)
    parser.add_argument(
        "data", nargs="?", default="-", metavar="DATA", help="the event's data, or - for stdin"
    )


def _post(client: httpx.Client, url: str, events: list[dict[str, Any]]) -> list[str]:
    body: object = events[0] if len(events) == 1 else events
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as error:
        raise CommandError(f"cannot publish to {url}: {error}") from None
    try:
        reply = response.json()
    except ValueError:
        reply = None
    if response.status_code != 200 or not isinstance(reply, dict) or "ids" not in reply:
        message = reply.get("error") if isinstance(reply, dict) else None
        if not isinstance(message, str):
            message = response.text.strip()[:200] or response.reason_phrase
        raise CommandError(f"HTTP {response.status_code}: {message}")
    return [str(event_id) for event_id in reply["ids"]]


def _stdin_batches(stream: TextIO) -> Iterator[list[str]]:
    """Lines of `stream` as they arrive; the lines already waiting come together as one batch.

    A reader thread hands lines over a queue, so a line is published as soon as it is read:
    nothing waits for the end of the input, or for a batch to fill.
    """
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            for raw in iter(stream.buffer.readline, b""):
                lines.put(raw.decode("utf-8", "replace").rstrip("\n").removesuffix("\r"))
        finally:
            lines.put(None)

    threading.Thread(target=read, name="ssehub-publish-stdin", daemon=True).start()
    while True:
        line = lines.get()
        if line is None:
            return
        batch = [line]
        while len(batch) < MAX_BATCH:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                yield batch
                return
            batch.append(line)
        yield batch


def publish(args: argparse.Namespace) -> int:
    """Publish an event to a hub (or one event per stdin line with '-').

    POST to the hub's /publish and print the id of each event published. With '-' (or no
    DATA), every line read from stdin is published as soon as it is read, e.g.
    `tail -f app.log | ssehub publish --topic logs -`. Exits 1 with the hub's error message
    if it refuses.
    """
    return _run("publish", lambda: _publish(args))


def _publish(args: argparse.Namespace) -> None:
    url = args.hub.rstrip("/") + "/publish"
    fields: dict[str, Any] = {"topic": args.topic}
    if args.event is not None:
        fields["event"] = args.event
    headers = _headers(args.header, args.token)
    batches = _stdin_batches(sys.stdin) if args.data == "-" else iter([[args.data]])
    with httpx.Client(headers=headers, timeout=30.0) as client:
        for batch in batches:
            ids = _post(client, url, [{**fields, "data": data} for data in batch])
            sys.stdout.write("".join(f"{event_id}\n" for event_id in ids))
            sys.stdout.flush()
