"""Fan-out through uvicorn: ssehub.asgi vs the sse-starlette broadcaster vs FastAPI's fastapi.sse.

    .venv/bin/python benchmarks/bench_asgi.py [--subscribers 1000] [--events 500]

Each target is a FastAPI app served by uvicorn (uvloop + httptools, one worker, its own
process, pinned to core 0 when there are two cores), measured one after another:

* ssehub.asgi: `GET /events` is `hub_stream(hub, request, "bench")`; `POST /publish` calls
  `hub.publish` (each event is encoded once; a subscriber's pending events go out in one send).
* sse-starlette: the usual broadcaster: an asyncio.Queue per subscriber, filled by
  `POST /publish`, drained by a generator given to `sse_starlette.EventSourceResponse`.
* fastapi.sse: the same queue per subscriber, drained by a generator path operation with
  `response_class=fastapi.sse.EventSourceResponse` yielding `ServerSentEvent(raw_data=...)`.

The load is the same for all three, in the same run: N subscribers (raw non-blocking sockets on
uvloop in a separate process, pinned to core 1, counting `data:` lines) connect; warm-up events
are published until every subscriber has received one (so all are registered), then E events
are published one at a time over one keep-alive connection (each POST awaited). A target's
rate is N*E deliveries over the time from the first publish to the last delivery; deliveries
missing 5 s after the last publish are counted lost. All traffic is on 127.0.0.1.

The report gives each process's CPU time over the measured window: the subscriber fleet well
under one core while the server is near one core means the server is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastapi.sse
import sse_starlette
from fastapi import FastAPI, Request

from ssehub import Hub
from ssehub.asgi import HubStreamResponse, hub_stream

HERE = Path(__file__).resolve()
TARGETS = ("ssehub", "sse-starlette", "fastapi.sse")
QUIET = 5.0  # seconds without a delivery, after the last publish, that end a measurement
MEASURED = b"data: m"  # measured events' data starts with "m"; warm-up events' with "w"


# -- the servers --------------------------------------------------------------------------------


def ssehub_app() -> FastAPI:
    hub = Hub(history=100)
    app = FastAPI()

    @app.get("/events")
    async def events(request: Request) -> HubStreamResponse:
        return hub_stream(hub, request, "bench")

    @app.post("/publish")
    async def publish(request: Request) -> dict[str, str]:
        return {"id": await hub.publish("bench", (await request.body()).decode())}

    return app


def queue_fan_out(app: FastAPI) -> set[asyncio.Queue[str]]:
    """The broadcaster both baselines share: `POST /publish` fills a queue per subscriber."""
    queues: set[asyncio.Queue[str]] = set()

    @app.post("/publish")
    async def publish(request: Request) -> dict[str, int]:
        data = (await request.body()).decode()
        for queue in queues:
            queue.put_nowait(data)
        return {"subscribers": len(queues)}

    return queues


def sse_starlette_app() -> FastAPI:
    app = FastAPI()
    queues = queue_fan_out(app)

    @app.get("/events")
    async def events() -> sse_starlette.EventSourceResponse:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues.add(queue)

        async def generate() -> AsyncIterator[dict[str, str]]:
            try:
                while True:
                    yield {"data": await queue.get()}
            finally:
                queues.discard(queue)

        return sse_starlette.EventSourceResponse(generate())

    return app


def fastapi_sse_app() -> FastAPI:
    app = FastAPI()
    queues = queue_fan_out(app)

    @app.get("/events", response_class=fastapi.sse.EventSourceResponse)
    async def events() -> AsyncIterator[fastapi.sse.ServerSentEvent]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues.add(queue)
        try:
            while True:
                yield fastapi.sse.ServerSentEvent(raw_data=await queue.get())
        finally:
            queues.discard(queue)

    return app


APPS: dict[str, Callable[[], FastAPI]] = {
    "ssehub": ssehub_app,
    "sse-starlette": sse_starlette_app,
    "fastapi.sse": fastapi_sse_app,
}


def serve(target: str) -> None:
    import uvicorn

    pin(0)
    uvicorn.run(
        APPS[target](),
        host="127.0.0.1",
        port=0,
        loop="uvloop",
        http="httptools",
        log_level="info",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=300,
    )


def pin(core: int) -> None:
    """Server on core 0, load on core 1: neither steals the other's CPU (with two cores)."""
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {core})


# -- the subscriber fleet -----------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """One subscriber connection: counts the measured `data:` lines it receives."""

    def __init__(self, fleet: Fleet, request: bytes) -> None:
        self.fleet = fleet
        self.request = request
        self.headers_seen = False
        self.warm = False
        self.count = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        cast(asyncio.Transport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        fleet = self.fleet
        if not self.headers_seen and b"\r\n\r\n" in data:
            self.headers_seen = True
            fleet.tally("connected", 1)
        # The tail keeps a `data: m` split across two reads countable, and never counts twice.
        window = self.tail + data
        self.tail = window[-(len(MEASURED) - 1) :]
        if not self.warm and b"data: w" in window:
            self.warm = True
            fleet.tally("warm", 1)
        found = window.count(MEASURED)
        if found:
            self.count += found
            fleet.last_delivery = time.monotonic()
            fleet.tally("delivered", found)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fleet.dropped += 1


class Fleet:
    """The counters of all subscribers, and a way to wait until one reaches a value."""

    def __init__(self) -> None:
        self.counts = {"connected": 0, "warm": 0, "delivered": 0}
        self.dropped = 0
        self.last_delivery = 0.0
        self._goal: tuple[str, int] | None = None
        self._reached = asyncio.Event()

    def tally(self, name: str, amount: int) -> None:
        self.counts[name] += amount
        goal = self._goal
        if goal is not None and goal[0] == name and self.counts[name] >= goal[1]:
            self._reached.set()

    async def reach(self, name: str, value: int, quiet: float | None = None) -> None:
        """Until counter `name` reaches `value`, or nothing has arrived for `quiet` seconds."""
        while self.counts[name] < value:
            self._goal = (name, value)
            self._reached.clear()
            seen = self.counts[name]
            try:
                await asyncio.wait_for(self._reached.wait(), quiet)
            except TimeoutError:
                if self.counts[name] == seen:
                    return
        self._goal = None


def report(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def run_fleet(url: str, subscribers: int, events: int) -> None:
    pin(1)
    host, port = url.removeprefix("http://").split(":")
    request = f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    fleet = Fleet()
    loop = asyncio.get_running_loop()
    connections: list[Subscriber] = []
    for start in range(0, subscribers, 100):
        batch = range(start, min(start + 100, subscribers))
        made = await asyncio.gather(
            *(
                loop.create_connection(lambda: Subscriber(fleet, request.encode()), host, int(port))
                for _ in batch
            )
        )
        connections.extend(protocol for _, protocol in made)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    await fleet.reach("connected", subscribers)
    report({"connected": subscribers})
    await fleet.reach("warm", subscribers)
    report({"warm": subscribers})
    assert (await commands.readline()).strip() == b"go"
    cpu_before = cpu_seconds()
    assert (await commands.readline()).strip() == b"published"
    await fleet.reach("delivered", subscribers * events, quiet=QUIET)
    counts = [connection.count for connection in connections]
    report(
        {
            "delivered": fleet.counts["delivered"],
            "last_delivery": fleet.last_delivery,
            "cpu": cpu_seconds() - cpu_before,
            "min": min(counts),
            "max": max(counts),
            "dropped": fleet.dropped,
        }
    )


def cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the orchestra ------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    deliveries: int
    expected: int
    seconds: float
    server_cpu: float
    fleet_cpu: float
    publisher_cpu: float
    per_connection: tuple[int, int]

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.deliveries


async def lines_of(stream: asyncio.StreamReader) -> dict[str, Any]:
    """The fleet's next report; a fleet silent for a minute is broken."""
    while True:
        line = await asyncio.wait_for(stream.readline(), 60)
        if not line:
            raise RuntimeError("the subscriber fleet died")
        if line.startswith(b"{"):
            message: dict[str, Any] = json.loads(line)
            return message


class Publisher:
    """POST /publish over one keep-alive connection, each reply awaited: a lean HTTP client, so
    the publishing side adds as little as possible to each event's round trip."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str) -> Publisher:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def publish(self, data: bytes) -> None:
        self.writer.write(
            b"POST /publish HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 60)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"publish failed: {head!r}")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert length is not None, head
        await self.reader.readexactly(int(length.group(1)))

    def close(self) -> None:
        self.writer.close()


async def measure(target: str, subscribers: int, events: int) -> Result:
    me = [sys.executable, str(HERE)]
    server = await asyncio.create_subprocess_exec(
        *me, "serve", target, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert server.stdout is not None
    url = None
    while url is None:
        line = await server.stdout.readline()
        if not line:
            raise RuntimeError(f"{target}: the server exited before listening")
        found = re.search(rb"running on (http://127\.0\.0\.1:\d+)", line)
        url = found.group(1).decode() if found else None
    drain = asyncio.ensure_future(server.stdout.read())
    fleet = await asyncio.create_subprocess_exec(
        *me,
        "fleet",
        url,
        str(subscribers),
        str(events),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert fleet.stdin is not None and fleet.stdout is not None
    try:
        publisher = await Publisher.connect(url)
        await lines_of(fleet.stdout)  # every subscriber has its response head
        warm = asyncio.ensure_future(lines_of(fleet.stdout))
        while not warm.done():
            # Until each subscriber has had one: all of them are registered by then.
            await publisher.publish(b"w")
            await asyncio.wait([warm], timeout=0.1)
        await warm
        server_before = cpu_seconds(server.pid)
        publisher_before = cpu_seconds()
        fleet.stdin.write(b"go\n")
        await fleet.stdin.drain()
        started = time.monotonic()
        for seq in range(events):
            await publisher.publish(f"m{seq:06d}".ljust(64, "x").encode())
        publisher_cpu = cpu_seconds() - publisher_before
        fleet.stdin.write(b"published\n")
        await fleet.stdin.drain()
        outcome = await lines_of(fleet.stdout)
        server_cpu = cpu_seconds(server.pid) - server_before
        publisher.close()
    finally:
        # Subscribers first: a server with open streams may wait for them before it exits.
        for process in (fleet, server):
            if process.returncode is None:
                process.kill()
            await process.wait()
        drain.cancel()
    return Result(
        target=target,
        deliveries=outcome["delivered"],
        expected=subscribers * events,
        seconds=outcome["last_delivery"] - started,
        server_cpu=server_cpu,
        fleet_cpu=outcome["cpu"],
        publisher_cpu=publisher_cpu,
        per_connection=(outcome["min"], outcome["max"]),
    )


def table(results: list[Result], subscribers: int, events: int) -> str:
    baseline = next((r.rate for r in results if r.target == "sse-starlette"), 0.0)
    lines = [
        f"Fan-out of {events} events to {subscribers} subscribers, one uvicorn worker "
        "(uvloop + httptools), publishes one at a time over HTTP:",
        "",
        "| target | deliveries/s | vs sse-starlette | lost | per subscriber (min-max) "
        "| time (s) | server CPU | fleet CPU | publisher CPU |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.rate / baseline:.2f}x" if baseline else "-"
        lines.append(
            f"| {r.target} | {r.rate:,.0f} | {ratio} | {r.lost} | "
            f"{r.per_connection[0]}-{r.per_connection[1]} | {r.seconds:.2f} | "
            f"{r.server_cpu / r.seconds:.0%} | {r.fleet_cpu / r.seconds:.0%} | "
            f"{r.publisher_cpu / r.seconds:.0%} |"
        )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines += [
        "",
        "CPU columns: CPU time over the measured window, as a share of one core. "
        f"Load average at the end: {load} on {os.cpu_count()} cores (other work on the "
        "machine shows up here).",
    ]
    return "\n".join(lines)


async def orchestrate(targets: list[str], subscribers: int, events: int) -> list[Result]:
    pin(1)
    results = []
    for target in targets:
        print(f"measuring {target} ...", file=sys.stderr, flush=True)
        results.append(await measure(target, subscribers, events))
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "fleet":
        import uvloop

        url, subscribers, events = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        uvloop.run(run_fleet(url, subscribers, events))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    args = parser.parse_args()
    targets = [t for t in args.only.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; choose from {TARGETS}")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.subscribers + 100:
        parser.error(f"the open-files limit ({hard}) is too low for {args.subscribers}")
    # Inherited by the server and the fleet, which each hold a socket per subscriber.
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = asyncio.run(orchestrate(targets, args.subscribers, args.events))
    print(table(results, args.subscribers, args.events))


if __name__ == "__main__":
    main()
