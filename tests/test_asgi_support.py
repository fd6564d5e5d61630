"""Helpers shared by the ASGI, WSGI and example tests (this module holds no tests).

Servers run for real on loopback: uvicorn or werkzeug in a thread of the test process (so a test
can see what its app recorded), or a whole process when the test is about the process itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop
from werkzeug.serving import make_server

from ssehub.asgi import end_streams
from ssehub.wire import Decoder, Event

# Generous: only ever reached when something is broken.
WAIT = 20.0
# One client for the whole run: making one per request costs more than the request.
http = httpx.Client(timeout=WAIT)


class Events:
    """The events of a streaming httpx response, decoded as they arrive."""

    def __init__(self, response: httpx.Response, last_event_id: str = "") -> None:
        self.response = response
        self.decoder = Decoder(last_event_id)
        self.raw = bytearray()
        self._chunks = response.iter_raw()
        self._ready: list[Event] = []

    def next(self) -> Event:
        """The next event; StopIteration once the body has ended."""
        while not self._ready:
            chunk = next(self._chunks)
            self.raw += chunk
            self._ready.extend(self.decoder.feed(chunk))
        return self._ready.pop(0)

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]

    def rest(self) -> list[Event]:
        """Every event until the server ends the body."""
        events: list[Event] = []
        while True:
            try:
                events.append(self.next())
            except StopIteration:
                return events

    def read_until(self, marker: bytes) -> None:
        """Read raw bytes until `marker` has arrived (for what decodes to no event)."""
        while marker not in self.raw:
            chunk = next(self._chunks)
            self.raw += chunk
            self._ready.extend(self.decoder.feed(chunk))

    def until_position(self) -> str:
        """Read a hub stream's opening until it has said where it stands (`id:` alone)."""
        while self.decoder.last_event_id == "":
            chunk = next(self._chunks)
            self.raw += chunk
            self._ready.extend(self.decoder.feed(chunk))
        assert not self._ready, self._ready
        return self.decoder.last_event_id


@contextmanager
def events(
    url: str,
    *,
    method: str = "GET",
    last_event_id: str | None = None,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> Iterator[Events]:
    """Open `url` as an event stream: `with events(url) as stream: stream.next()`."""
    headers = dict(kwargs.pop("headers", {}))
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with (client or http).stream(method, url, headers=headers, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        yield Events(response, last_event_id or "")


def broken_off(url: str) -> list[Event]:
    """The events of a stream the server breaks off (no final chunk), up to the break."""
    received: list[Event] = []
    with events(url) as stream, pytest.raises(httpx.RemoteProtocolError):
        while True:
            received.append(stream.next())
    return received


def listening_socket() -> socket.socket:
    """A bound, listening loopback socket: connections queue from now, before a server runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class ThreadServer:
    url: str
    loop: asyncio.AbstractEventLoop | None = None
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def serve_asgi(app: Any, **config: Any) -> Iterator[ThreadServer]:
    """Serve `app` with uvicorn (uvloop + httptools) in a thread; stop it on exit.

    The socket listens before uvicorn starts, so requests queue instead of racing its startup.
    """
    sock = listening_socket()
    host, port = sock.getsockname()
    settings = {"log_level": "warning", "loop": "uvloop", "http": "httptools", **config}
    server = uvicorn.Server(uvicorn.Config(app, **settings))
    handle = ThreadServer(f"http://{host}:{port}")
    loop_known = threading.Event()

    async def main() -> None:
        handle.loop = asyncio.get_running_loop()
        loop_known.set()
        await server.serve(sockets=[sock])

    def run() -> None:
        try:
            uvloop.run(main())
        except BaseException as error:  # pragma: no cover - reported by the test
            handle.errors.append(error)
            loop_known.set()

    thread = threading.Thread(target=run, daemon=True, name="uvicorn")
    thread.start()
    assert loop_known.wait(WAIT)
    try:
        yield handle
    finally:
        # Stopped from code, uvicorn would wait for open streams: end them as a signal would.
        server.should_exit = True
        if handle.loop is not None:
            end_streams(handle.loop)
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
        assert not handle.errors, handle.errors


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app with werkzeug's threaded server (what `flask run` uses) in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # The poll interval only bounds how long shutdown() takes to be noticed.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), daemon=True, name="werkzeug"
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


@dataclass
class Process:
    """A server in its own process; `url` as it announced it."""

    process: subprocess.Popen[str]
    url: str
    output: list[str]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(WAIT)


@contextmanager
def server_process(
    command: list[str],
    ready: str = r"(http://127\.0\.0\.1:\d+)",
    cwd: str | None = None,
    url: str | None = None,
) -> Iterator[Process]:
    """Run `command`; wait until its output matches `ready`; kill it on exit.

    The server's URL is `url`, or else what `ready`'s first group matched.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group: workers it forks are stopped with it
    )
    assert process.stdout is not None
    output: list[str] = []
    pattern = re.compile(ready)
    for line in process.stdout:
        output.append(line)
        match = pattern.search(line)
        if match:
            url = url or match.group(1)
            break
    else:
        process.wait(WAIT)
        raise RuntimeError(f"{command} exited before it was ready:\n{''.join(output)}")
    stdout = process.stdout
    # Keep draining so a chatty server never blocks on a full pipe; keep the lines for asserts.
    drain = threading.Thread(target=lambda: output.extend(stdout), daemon=True)
    drain.start()
    handle = Process(process, url, output)
    try:
        yield handle
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(WAIT)
        drain.join(WAIT)


def wait_until_accepting(url: str) -> None:
    """For a server that says nothing once it listens (granian): probe until it accepts."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + WAIT
    while True:
        with socket.socket() as probe:
            if probe.connect_ex((host, int(port))) == 0:
                return
        assert time.monotonic() < deadline, f"{url} never accepted a connection"
        time.sleep(0.01)  # nothing to wait on: the server gives no sign


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
