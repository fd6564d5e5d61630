"""The sse-starlette broadcaster pattern, as people write it today (benchmark comparison target).

One asyncio.Queue per subscriber; POST /pub/<channel> puts the body into every queue of that
channel; GET /sub/<channel> streams its queue through EventSourceResponse. Run under uvicorn with
uvloop and httptools in one process (see bench_fanout.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

# Same keep-alive period as the hub's --heartbeat in the benchmark.
PING_SECONDS = float(os.environ.get("BENCH_PING_SECONDS", "60"))

channels: dict[str, set[asyncio.Queue[str]]] = {}


async def subscribe(request: Request) -> EventSourceResponse:
    channel = request.path_params["channel"]
    queue: asyncio.Queue[str] = asyncio.Queue()
    subscribers = channels.setdefault(channel, set())
    subscribers.add(queue)

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                yield {"data": await queue.get()}
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(stream(), ping=PING_SECONDS)


async def publish(request: Request) -> PlainTextResponse:
    data = (await request.body()).decode()
    queues = channels.get(request.path_params["channel"], ())
    for queue in queues:
        queue.put_nowait(data)
    return PlainTextResponse(f"{len(queues)}\n")


app = Starlette(
    routes=[
        Route("/sub/{channel}", subscribe, methods=["GET"]),
        Route("/pub/{channel}", publish, methods=["POST"]),
    ]
)
