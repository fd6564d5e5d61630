"""What one publish costs the hub server in user space, without sockets.

    .venv/bin/python benchmarks/bench_publish_path.py                 # µs per publish, best of 5
    .venv/bin/python benchmarks/bench_publish_path.py --instructions  # callgrind, ~1 min
    .venv/bin/python benchmarks/bench_publish_path.py --auth          # a JWT on every publish

The server's own protocol objects (`HttpProtocol`, the `PublishGroup`, the hub, the memory
backend, the fan-out) run on uvloop as in `ssehub serve`, fed a plain form `POST /publish` by 8
publisher connections per turn of the loop, with one subscriber stream. Only the transports are
stand-ins that count writes, so the kernel's share (the read and write per request, about two
thirds of the server's CPU under the publish-rate benchmark) is left out: this measures what the
Python and C of ssehub cost, which is what a change to them changes.

Timings on a shared machine drift; `--instructions` counts instructions under valgrind's
callgrind instead (the difference of a run with publishes and one without, divided by their
number), which gives the same figure on every run of the same code and interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time

import uvloop

from ssehub.auth import Policy, mint_token
from ssehub.hub import Hub
from ssehub.server import ServerConfig
from ssehub.server._app import ServerState
from ssehub.server._protocol import HttpProtocol

PUBLISHERS = 8
SECRET = "a-benchmark-secret-of-at-least-32-bytes"
BODY = b"topic=bench&data=hello+world"
REQUEST = (
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
    % (len(BODY), BODY)
)


class CountingTransport:
    """Stands in for a socket: counts what would be written."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None


def request(token: str | None) -> bytes:
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    return REQUEST.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\n" + auth)


async def publish_turns(publishes: int, rounds: int, auth: bool = False) -> list[float]:
    """Seconds per publish for each round of `publishes` publishes; with `auth`, under a JWT
    policy, each request carrying a token (verified once, then found in the cache)."""
    hub = Hub()
    await hub.start()
    policy = Policy(SECRET) if auth else None
    raw = request(mint_token(SECRET, publish=["bench"], ttl=3600) if auth else None)
    state = ServerState(hub, ServerConfig(policy=policy))
    subscriber = HttpProtocol(state)
    subscriber.connection_made(CountingTransport())  # type: ignore[arg-type]
    subscriber.data_received(b"GET /events?topic=bench HTTP/1.1\r\nHost: h\r\n\r\n")
    publishers = []
    for _ in range(PUBLISHERS):
        transport = CountingTransport()
        connection = HttpProtocol(state)
        connection.connection_made(transport)  # type: ignore[arg-type]
        publishers.append((connection.data_received, transport))

    async def turns(count: int) -> None:
        for _ in range(count):
            for data_received, _ in publishers:
                data_received(raw)
            await asyncio.sleep(0)  # the group is published and answered, the sweep runs
        await asyncio.sleep(0)

    await turns(100)  # warm up
    results = []
    for _ in range(rounds):
        answered = sum(transport.writes for _, transport in publishers)
        start = time.perf_counter()
        await turns(publishes // PUBLISHERS)
        elapsed = time.perf_counter() - start
        assert sum(t.writes for _, t in publishers) - answered == publishes, "a publish unanswered"
        results.append(elapsed / publishes if publishes else 0.0)
    await hub.close()
    return results


def count_instructions(publishes: int, auth: bool) -> int:
    """Instructions of a whole run of this script with `publishes` publishes, under callgrind."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += [__file__, "--publishes", str(publishes), "--rounds", "1"]
    argv += ["--auth"] if auth else []
    run = subprocess.run(argv, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", run.stderr)
    assert match, run.stderr[-2000:]
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", action="store_true", help="count them with callgrind")
    parser.add_argument("--publishes", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--auth", action="store_true", help="a JWT policy on, a token with every publish"
    )
    args = parser.parse_args()
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("valgrind is not installed (apt-get install valgrind)")
        publishes = 16_000
        total = count_instructions(publishes, args.auth) - count_instructions(0, args.auth)
        version = sys.version.split()[0]
        print(f"{total / publishes:,.0f} instructions per publish (callgrind, Python {version})")
        return
    per_publish = uvloop.run(publish_turns(args.publishes, args.rounds, args.auth))
    if args.publishes:
        implementation = "pure Python" if os.environ.get("SSEHUB_PURE_PYTHON") else "default"
        print(
            f"{min(per_publish) * 1e6:.2f} µs per publish, best of {args.rounds} "
            f"(Python {sys.version.split()[0]}, {implementation}"
            f"{', auth on' if args.auth else ''})"
        )


if __name__ == "__main__":
    main()
