"""A loopback HTTP server that misbehaves on purpose, for the client tests.

It runs a raw asyncio server in a thread, on 127.0.0.1 and an ephemeral port, records every
request, and answers by path:

- `/numbers?per=N&total=T[&retry=R][&cut=1][&start=S]`: a deterministic event sequence; event
  `n` is `id: n`, `data: event n`. Resumes after the `Last-Event-ID` header (or `start`). Each
  connection sends `retry: R` first (if given), then at most N events, then (with `cut=1`) half
  of the next event, `id:` included, then closes the connection. Once all T events are out
  it answers 204, so a client stops.
- `/idonly?id=X`: a stream of just `id: X` and a blank line (dispatches nothing), then closes;
  with a `Last-Event-ID` header it answers 204.
- `/empty`: a 200 stream with no events, closed at once (a "clean end" that delivers nothing).
- `/stall`: one event, then silence until the client goes away.
- `/hang`: reads the request and never answers.
- `/status/<code>`: that status with a JSON body `{"error": ...}` (204: no body).
- `/html`: 200 with `text/html`.
- `/redirect?to=<path-and-query>[&code=302]`: a redirect.
- `POST /publish`: records the JSON body; 400 `{"error": ...}` if a topic is "forbidden",
  else 200 `{"ids": [...]}`. Keeps the connection alive.

Tests wait on `wait_for(predicate)` (a condition variable), never on sleeps.

Also a pytest plugin for the client tests (`pytest_plugins = ("support.misbehaving_server",)`): the
`server` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["MisbehavingServer", "Recorded", "server"]

_REASONS = {
    200: "OK",
    204: "No Content",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    500: "Internal Server Error",
}
_ERRORS = {401: "token expired", 500: "the database is on fire"}
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


@dataclass(frozen=True)
class Recorded:
    """One request, as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # which TCP connection it came on (1, 2, ...)


def number_event(n: int) -> bytes:
    """The bytes of event `n` of the `/numbers` sequence."""
    return f"id: {n}\ndata: event {n}\n\n".encode()


@dataclass(eq=False)
class MisbehavingServer:
    """Start with `start()` (returns the base URL), stop with `stop()`."""

    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _condition: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _connections: int = 0
    _published: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- control, from the test's thread -------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0)
            )
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="misbehaving-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.url

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)

    def wait_for(self, predicate: Callable[[list[Recorded]], bool], timeout: float = 10) -> None:
        """Block until `predicate(requests)` holds (AssertionError after `timeout`)."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.requests), timeout):
                raise AssertionError(f"server never saw what the test waited for: {self.requests}")

    def seen(self, path: str) -> list[Recorded]:
        """The requests for `path`, in order."""
        with self._condition:
            return [r for r in self.requests if r.path == path]

    # -- the server ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._connections += 1
        connection = self._connections
        try:
            while True:
                request = await self._read_request(reader, connection)
                if request is None:
                    break
                with self._condition:
                    self.requests.append(request)
                    self._condition.notify_all()
                keep_alive = await self._respond(request, reader, writer)
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader, connection: int) -> Recorded | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        return Recorded(method, parts.path, query, headers, body, connection)

    async def _respond(
        self, request: Recorded, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Write the answer; True to keep the connection for another request."""
        path = request.path
        query = {name: values[-1] for name, values in request.query.items()}
        if path == "/numbers":
            self._numbers(request, query, writer)
        elif path == "/idonly":
            if "last-event-id" in request.headers:
                writer.write(_plain(204, b""))
            else:
                writer.write(_SSE_HEAD + f"id: {query['id']}\n\n".encode())
        elif path == "/empty":
            writer.write(_SSE_HEAD + b": nothing to see\n\n")
        elif path in ("/stall", "/hang"):
            if path == "/stall":
                writer.write(_SSE_HEAD + b"id: 1\ndata: first\n\n")
                await writer.drain()
            await reader.read()  # until the client goes away
        elif path.startswith("/status/"):
            code = int(path.rpartition("/")[2])
            body = b"" if code == 204 else json.dumps({"error": _ERRORS.get(code, "no")}).encode()
            writer.write(_plain(code, body, "application/json"))
        elif path == "/html":
            writer.write(_plain(200, b"<h1>not a stream</h1>", "text/html; charset=utf-8"))
        elif path == "/redirect":
            code = int(query.get("code", "302"))
            writer.write(_plain(code, b"", extra=f"Location: {query['to']}\r\n"))
        elif path == "/publish":
            writer.write(self._publish(request))
            return True
        else:
            writer.write(_plain(404, b'{"error": "no such path"}', "application/json"))
        return False

    def _numbers(
        self, request: Recorded, query: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        total = int(query.get("total", "10"))
        per = int(query.get("per", "3"))
        after = int(request.headers.get("last-event-id") or query.get("start", "0"))
        if after >= total:
            writer.write(_plain(204, b""))
            return
        out = bytearray(_SSE_HEAD)
        if "retry" in query:
            out += f"retry: {query['retry']}\n\n".encode()
        last = min(after + per, total)
        for n in range(after + 1, last + 1):
            out += number_event(n)
        if query.get("cut") == "1" and last < total:
            out += f"id: {last + 1}\ndata: half of it".encode()  # no blank line: incomplete
        writer.write(bytes(out))

    def _publish(self, request: Recorded) -> bytes:
        payload = json.loads(request.body)
        items = payload if isinstance(payload, list) else [payload]
        for item in items:
            topics = item["topic"] if isinstance(item["topic"], list) else [item["topic"]]
            if "forbidden" in topics:
                body = json.dumps({"error": "topic 'forbidden' is not allowed", "field": "topic"})
                return _plain(400, body.encode(), "application/json", keep_alive=True)
        ids = []
        for _ in items:
            self._published += 1
            ids.append(str(self._published))
        return _plain(200, json.dumps({"ids": ids}).encode(), "application/json", keep_alive=True)


def _plain(
    status: int,
    body: bytes,
    content_type: str = "text/plain",
    extra: str = "",
    *,
    keep_alive: bool = False,
) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {connection}\r\n{extra}\r\n"
    )
    return head.encode() + body


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    """A fresh misbehaving server for one test."""
    running = MisbehavingServer()
    running.start()
    yield running
    running.stop()
