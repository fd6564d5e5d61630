"""A loopback TCP proxy in front of the hub that a test can cut, to make the browser see a real
network drop: it records every HTTP request head going through, can hold requests to a path (so
events published meanwhile are a real gap the reconnect must fill), and can abort connections.

It runs its own asyncio loop in a thread, so it works next to Playwright's sync API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CuttableProxy", "ProxiedRequest"]


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    connection: int


@dataclass(eq=False)
class _Connection:
    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    path: str = ""  # the latest request on this connection
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class CuttableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.requests: list[ProxiedRequest] = []
        self._connections: set[_Connection] = set()
        self._count = 0
        self._hold_prefix: str | None = None
        self._released: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- control (called from the test thread) --------------------------------------------------

    def start(self) -> CuttableProxy:
        self._thread.start()
        self.port = self._call(self._start)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, prefix: str) -> None:
        """From now on, requests whose path starts with `prefix` wait until `release()`."""
        self._call(self._hold, prefix)

    def release(self) -> None:
        self._call(self._release)

    def cut(self, prefix: str) -> int:
        """Abort every connection whose latest request path starts with `prefix`."""
        return self._call(self._cut, prefix)

    def seen(self, prefix: str, header: str | None = None) -> list[ProxiedRequest]:
        """Requests so far to paths starting with `prefix` (having `header`, if given)."""
        return [
            r
            for r in list(self.requests)
            if r.path.startswith(prefix) and (header is None or header in r.headers)
        ]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll `condition` until true (for conditions outside the page)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("proxy condition not met in time")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, function: Callable[..., object], *args: object) -> object:
        async def run() -> object:
            result = function(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    # -- inside the loop --------------------------------------------------------------------------

    async def _start(self) -> int:
        self._released = asyncio.Event()
        self._released.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _hold(self, prefix: str) -> None:
        self._hold_prefix = prefix
        self._released = asyncio.Event()

    def _release(self) -> None:
        self._hold_prefix = None
        assert self._released is not None
        self._released.set()

    def _cut(self, prefix: str) -> int:
        cut = 0
        for connection in list(self._connections):
            if connection.path.startswith(prefix):
                cut += 1
                connection.client.transport.abort()
                if connection.upstream is not None:
                    connection.upstream.transport.abort()
        return cut

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.client.transport.abort()
            if connection.upstream is not None:
                connection.upstream.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count += 1
        connection = _Connection(self._count, writer)
        self._connections.add(connection)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            self._connections.discard(connection)
            return
        connection.upstream = up_writer
        try:
            await asyncio.gather(
                self._requests(connection, reader, up_writer),
                self._pump(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._connections.discard(connection)
            for side in (writer, up_writer):
                side.close()

    async def _requests(
        self, connection: _Connection, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        """Forward client bytes, noting each request head (and holding it if asked)."""
        buffer = b""
        body_left = 0
        while True:
            data = await reader.read(65536)
            if not data:
                upstream.close()
                return
            buffer += data
            while buffer:
                if body_left:
                    chunk, buffer = buffer[:body_left], buffer[body_left:]
                    body_left -= len(chunk)
                    upstream.write(chunk)
                    continue
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buffer = buffer[: end + 4], buffer[end + 4 :]
                request = self._parse(head, connection.number)
                connection.path = request.path
                self.requests.append(request)
                prefix = self._hold_prefix
                if prefix is not None and request.path.startswith(prefix):
                    assert self._released is not None
                    await self._released.wait()
                upstream.write(head)
                body_left = int(request.headers.get("content-length", "0") or 0)
            await upstream.drain()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while True:
            data = await source.read(65536)
            if not data:
                sink.close()
                return
            sink.write(data)
            await sink.drain()

    @staticmethod
    def _parse(head: bytes, number: int) -> ProxiedRequest:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" "), "", ""][:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return ProxiedRequest(method, target, headers, number)
