"""Resuming through a 10 MB and a 100 MB backlog over a constrained link, in one connection.

    .venv/bin/python benchmarks/bench_backlog.py [--rate 100mbit] [--sizes 10,100]

The run moves itself into a network namespace of its own (`unshare -n`, as root), so the link
it constrains is a private loopback: `tc` shapes it to `--rate` with a token bucket, after the
backlog is published, and nothing else on the machine is slowed. Without `unshare` or `tc` it
says so and measures on the plain loopback.

For each size: one `ssehub serve` (memory store, default `--max-buffer-bytes` of 1 MiB) gets the
backlog as events of 5 KB on one topic; a client with a 64 KiB receive buffer resumes from just
before it with `Last-Event-ID` and reads as fast as the link allows. Reported: whether every event
arrived in order on that one connection (the replay is written as the socket drains, so a
reader is never cut as slow however large the backlog), the time and throughput, and the hub's
RSS before and after the resume.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _hub_process import free_port, start_serve

from ssehub.wire import Decoder

EVENT_BYTES = 5000
RECEIVE_BUFFER = 64 * 1024
INSIDE = "SSEHUB_BENCH_NETNS"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_hub(port: int, events: int) -> subprocess.Popen[bytes]:
    options = ["--history", str(events + 10), "--history-ttl", "3600", "--heartbeat", "60"]
    return start_serve(port, options)


def publish_backlog(url: str, events: int) -> str:
    data = "x" * EVENT_BYTES
    with httpx.Client(base_url=url, timeout=60) as client:
        start = client.post("/publish", data={"topic": "t", "data": "start"}).json()["ids"][0]
        for first in range(0, events, 200):
            batch = [{"topic": "t", "data": f"{n}:{data}"} for n in range(first, first + 200)]
            client.post("/publish", json=batch).raise_for_status()
    return str(start)


def resume(port: int, last_event_id: str, events: int) -> tuple[int, bool, float]:
    """Read the resume to its end: (events in order, connection still open, seconds)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    began = time.perf_counter()
    sock.sendall(
        b"GET /events?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: %s\r\n\r\n"
        % last_event_id.encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    head, _, body = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    decoder = Decoder()
    pending = decoder.feed(body)
    in_order = 0
    open_ = True
    while in_order < events:
        for event in pending:
            if event.event != "message" or not event.data.startswith(f"{in_order}:"):
                raise AssertionError(f"event #{in_order}: got {event.event} {event.data[:20]!r}")
            in_order += 1
        if in_order == events:
            break
        chunk = sock.recv(65536)
        if not chunk:
            open_ = False
            break
        pending = decoder.feed(chunk)
    seconds = time.perf_counter() - began
    sock.close()
    return in_order, open_, seconds


def shape(rate: str) -> bool:
    command = ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate]
    command += ["burst", "64kb", "latency", "200ms"]
    return subprocess.run(command, capture_output=True).returncode == 0


def measure(size_mb: int, rate: str | None) -> None:
    events = size_mb * 1_000_000 // EVENT_BYTES
    port = free_port()
    hub = start_hub(port, events)
    try:
        start = publish_backlog(f"http://127.0.0.1:{port}", events)
        link = "loopback, unshaped"
        if rate is not None:
            link = f"loopback shaped to {rate}" if shape(rate) else "loopback (tc failed)"
        before = rss_mib(hub.pid)
        received, still_open, seconds = resume(port, start, events)
        after = rss_mib(hub.pid)
        if rate is not None:
            subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    finally:
        hub.terminate()
        hub.wait(timeout=10)
    megabytes = events * (EVENT_BYTES + 20) / 1e6
    verdict = "all, in order, one connection" if received == events and still_open else "CUT"
    print(
        f"{size_mb:>4} MB backlog ({events:,} events), {link}: {received:,}/{events:,} received "
        f"({verdict}) in {seconds:.2f} s = {megabytes / seconds:.1f} MB/s; "
        f"hub RSS {before:.0f} -> {after:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", default="100mbit", help="the link's rate, as tc spells it")
    parser.add_argument("--sizes", default="10,100", help="backlog sizes in MB, comma-separated")
    args = parser.parse_args()
    if os.environ.get(INSIDE) is None and shutil.which("unshare") and os.geteuid() == 0:
        # Again, in a network namespace of our own: its loopback is ours to shape.
        script = 'ip link set lo up && exec "$0" "$@"'
        argv = ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv]
        sys.exit(subprocess.run(argv, env={**os.environ, INSIDE: "1"}).returncode)
    rate = args.rate if os.environ.get(INSIDE) and shutil.which("tc") else None
    if rate is None:
        print("no private network namespace (needs root and unshare): the loopback is not shaped")
    for size in args.sizes.split(","):
        measure(int(size), rate)


if __name__ == "__main__":
    main()
