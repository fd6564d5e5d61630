"""Client throughput: events/s received from one local stream, ssehub vs. the usual Python peers.

    .venv/bin/python benchmarks/bench_client.py [--events 200000] [--rounds 5]

A server in a subprocess answers every GET with the same bytes: an HTTP/1.1 head and N small
events (`id: <n>` and one `data:` line each), written as fast as the socket takes them, then
closes. Each client reads the whole stream through httpx from loopback and counts the events
(checking the last one); the best of `--rounds` rounds is reported, as a markdown table,
for two ways of running each client (see WAYS).

Clients: ssehub `EventSource` (and `AsyncEventSource`), httpx-sse
(`connect_sse(...).iter_sse()`), and sseclient-py. `requests` is not installed here, so
sseclient-py reads the same httpx response's byte iterator: `SSEClient(response.iter_bytes())`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


def payload(count: int) -> bytes:
    return b"".join(b"id: %d\ndata: event %d of the benchmark\n\n" % (n, n) for n in range(count))


# -- the server (a subprocess) --------------------------------------------------------------------


def serve(count: int) -> None:
    body = HEAD + payload(count)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def answer(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as request, contextlib.suppress(OSError):
            while request.readline().strip():  # the request head, up to its blank line
                pass
            conn.sendall(body)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


# -- the clients ----------------------------------------------------------------------------------


# Each client is run in two ways: "own client", as its docs show (the `httpx.Client` is made
# inside the timed region: ~20 ms of TLS setup that ssehub pays once per process), and "shared
# client" (an `httpx.Client` made beforehand and passed in: the stream alone is timed).
# A runner returns (seconds, data of the last event).
Runner = Callable[[str, int, bool], tuple[float, str]]


def ssehub_sync(url: str, count: int, shared: bool) -> tuple[float, str]:
    from ssehub.client import EventSource

    with httpx.Client() if shared else contextlib.nullcontext() as client:
        start = time.perf_counter()
        seen = 0
        with EventSource(url, client=client) as source:
            for event in source:
                seen += 1
                if seen == count:
                    return time.perf_counter() - start, event.data
    raise AssertionError(f"ssehub: {seen} events")


def ssehub_async(url: str, count: int, shared: bool) -> tuple[float, str]:
    from ssehub.client import AsyncEventSource

    async def run() -> tuple[float, str]:
        async with httpx.AsyncClient() if shared else contextlib.nullcontext() as client:
            start = time.perf_counter()
            seen = 0
            async with AsyncEventSource(url, client=client) as source:
                async for event in source:
                    seen += 1
                    if seen == count:
                        return time.perf_counter() - start, event.data
        raise AssertionError(f"ssehub async: {seen} events")

    return asyncio.run(run())


def httpx_sse_client(url: str, count: int, shared: bool) -> tuple[float, str]:
    from httpx_sse import connect_sse

    prebuilt = httpx.Client() if shared else None
    start = time.perf_counter()
    seen, data = 0, ""
    with prebuilt or httpx.Client() as client, connect_sse(client, "GET", url) as source:
        for event in source.iter_sse():
            seen += 1
            data = event.data
    assert seen == count, f"httpx-sse: {seen} events"
    return time.perf_counter() - start, data


def sseclient_py(url: str, count: int, shared: bool) -> tuple[float, str]:
    import sseclient

    prebuilt = httpx.Client() if shared else None
    start = time.perf_counter()
    seen, data = 0, ""
    headers = {"Accept": "text/event-stream"}
    with (
        prebuilt or httpx.Client() as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        for event in sseclient.SSEClient(response.iter_bytes()).events():
            seen += 1
            data = event.data
    assert seen == count, f"sseclient-py: {seen} events"
    return time.perf_counter() - start, data


CLIENTS: list[tuple[str, Runner]] = [
    ("ssehub `EventSource`", ssehub_sync),
    ("ssehub `AsyncEventSource`", ssehub_async),
    ("httpx-sse `iter_sse()`", httpx_sse_client),
    ("sseclient-py (over httpx `iter_bytes()`)", sseclient_py),
]
WAYS = {"own client": False, "shared client": True}


def measure(url: str, count: int, rounds: int) -> dict[tuple[str, str], float]:
    """Best events/s of each client and way over `rounds` rounds; the clients take turns in a
    round, so a burst of load on the machine hits them all alike."""
    expected = f"event {count - 1} of the benchmark"
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for way, shared in WAYS.items():
            for name, run in CLIENTS:
                gc.collect()
                elapsed, last = run(url, count, shared)
                assert last == expected, f"{name}: last event {last!r}, expected {expected!r}"
                best[name, way] = min(best.get((name, way), float("inf")), elapsed)
    return {key: count / elapsed for key, elapsed in best.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.events)
        return 0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--events", str(args.events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/events"
        size = len(payload(args.events))
        print(
            f"{args.events} events, {size / 1e6:.1f} MB, one stream over loopback; "
            f"best of {args.rounds}; Python {sys.version.split()[0]}\n"
        )
        rates = measure(url, args.events, args.rounds)
    finally:
        server.kill()
        server.wait()

    ours = {way: rates[CLIENTS[0][0], way] for way in WAYS}
    print("| client | " + " | ".join(f"events/s, {way}" for way in WAYS) + " | vs ssehub |")
    print("| --- |" + " ---: |" * (len(WAYS) + 1))
    for name, _ in CLIENTS:
        cells = " | ".join(f"{rates[name, way]:,.0f}" for way in WAYS)
        ratios = " / ".join(f"{rates[name, way] / ours[way]:.2f}x" for way in WAYS)
        print(f"| {name} | {cells} | {ratios} |")
    print()
    for way in WAYS:
        peer = max(rates[name, way] for name, _ in CLIENTS if not name.startswith("ssehub"))
        ratio = ours[way] / peer
        verdict = "met" if ratio >= 2 else "NOT met"
        print(f"{way}: ssehub `EventSource` / fastest peer = {ratio:.2f}x (>= 2x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
