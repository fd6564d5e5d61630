"""Does any request stall the loop? Delivery latency while /metrics scrapes and big resumes run.

    .venv/bin/python benchmarks/bench_stall.py [--topics 200000] [--seconds 5]

One `ssehub serve` (pinned to core 0 when there are two cores) holds `--topics` topics with
history. A probe publishes a timestamped event every 5 ms to a topic one subscriber reads, and
the subscriber records each event's publish-to-delivery latency. Measured in turn, each for
`--seconds`: the quiet hub; two clients scraping /metrics back to back; four clients resuming
back to back across 100 topics with history each (the most one subscription may name). The
report gives the latency percentiles of each phase and what one /metrics answer costs. The
issue's bar: an event's latency to other subscribers stays within a sweep (milliseconds) while
these run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time

import httpx
from _hub_process import free_port, start_serve

from ssehub.wire import Decoder


def start_hub(port: int, topics: int) -> subprocess.Popen[bytes]:
    options = ["--max-topics", str(topics + 1000), "--history", "10", "--heartbeat", "60"]
    return start_serve(port, options, pin=True)


async def fill(url: str, topics: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for first in range(0, topics, 500):
            batch = [{"topic": f"t{n}", "data": "x"} for n in range(first, first + 500)]
            reply = await client.post("/publish", json=batch)
            reply.raise_for_status()


async def probe(url: str, seconds: float) -> list[float]:
    """Publish-to-delivery latencies (ms) of events published every 5 ms for `seconds`."""
    latencies: list[float] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as client,
        client.stream("GET", "/events", params={"topic": "probe"}) as response,
    ):
        decoder = Decoder()
        chunks = response.aiter_raw()
        while decoder.last_event_id == "":
            decoder.feed(await anext(chunks))

        async def publisher() -> None:
            end = time.monotonic() + seconds
            async with httpx.AsyncClient(base_url=url, timeout=30) as publishing:
                while time.monotonic() < end:
                    await publishing.post(
                        "/publish", data={"topic": "probe", "data": repr(time.perf_counter())}
                    )
                    await asyncio.sleep(0.005)
                await publishing.post("/publish", data={"topic": "probe", "data": "end"})

        task = asyncio.ensure_future(publisher())
        async for chunk in chunks:
            now = time.perf_counter()
            for event in decoder.feed(chunk):
                if event.data == "end":
                    await task
                    return latencies
                latencies.append((now - float(event.data)) * 1000)
    return latencies


async def scrape(url: str, stop: asyncio.Event, costs: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not stop.is_set():
            start = time.perf_counter()
            reply = await client.get("/metrics")
            costs.append((time.perf_counter() - start) * 1000)
            assert reply.status_code == 200


async def resume(url: str, stop: asyncio.Event, topics: int, counts: list[int]) -> None:
    params = [("topic", f"t{n}") for n in range(min(100, topics))]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not stop.is_set():
            headers = {"Last-Event-ID": "1"}  # before everything: a reset, then live
            async with client.stream("GET", "/events", params=params, headers=headers) as r:
                async for _chunk in r.aiter_raw():
                    counts.append(1)
                    break


async def phase(url: str, name: str, seconds: float, topics: int) -> dict[str, object]:
    stop = asyncio.Event()
    costs: list[float] = []
    counts: list[int] = []
    helpers = []
    if name == "metrics scrapes":
        helpers = [asyncio.ensure_future(scrape(url, stop, costs)) for _ in range(2)]
    elif name == "resumes of 100 topics":
        helpers = [asyncio.ensure_future(resume(url, stop, topics, counts)) for _ in range(4)]
    latencies = await probe(url, seconds)
    stop.set()
    await asyncio.gather(*helpers)
    ordered = sorted(latencies)
    return {
        "phase": name,
        "events": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[int(len(ordered) * 0.99) - 1],
        "max": ordered[-1],
        "metrics_ms": statistics.median(costs) if costs else None,
        "scrapes": len(costs),
        "resumes": len(counts),
    }


async def main_async(topics: int, seconds: float) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hub = start_hub(port, topics)
    try:
        started = time.monotonic()
        await fill(url, topics)
        print(f"{topics} topics with history in {time.monotonic() - started:.1f} s")
        size = len(httpx.get(f"{url}/metrics").content)
        print(f"/metrics answer: {size} bytes")
        rows = [
            await phase(url, name, seconds, topics)
            for name in ("quiet", "metrics scrapes", "resumes of 100 topics")
        ]
    finally:
        hub.terminate()
        hub.wait(10)
    print(
        "\n| phase | probe events | latency p50 | p99 | max | /metrics answer | scrapes | resumes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        metrics = f"{row['metrics_ms']:.2f} ms" if row["metrics_ms"] is not None else "-"
        print(
            f"| {row['phase']} | {row['events']} | {row['p50']:.2f} ms | {row['p99']:.2f} ms | "
            f"{row['max']:.2f} ms | {metrics} | {row['scrapes']} | {row['resumes']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.topics, args.seconds))


if __name__ == "__main__":
    main()
