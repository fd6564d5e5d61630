"""A clock that ticks over Server-Sent Events and ends with an `end` event, in FastAPI.

The tutorials' first demo: the server pushes the time every second, `count` times, then an `end`
event, on which the page closes its EventSource (or the browser would reconnect and start over).
Every tick has an id, so a browser that reconnects mid-way (it sends Last-Event-ID) continues
the count instead of restarting it.

Run:  .venv/bin/python examples/fastapi_clock.py           # uvicorn on http://127.0.0.1:8001/
Try:  curl -N 'http://127.0.0.1:8001/clock?count=5'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import uvicorn
from _cli import arguments
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from ssehub import Event
from ssehub.asgi import EventSourceResponse, last_event_id

app = FastAPI(title="ssehub clock")

PAGE = """<!doctype html>
<meta charset="utf-8"><title>SSE clock</title>
<h1>SSE clock</h1><div id="app"></div>
<script>
  const app = document.getElementById("app");
  const source = new EventSource("/clock");
  source.onmessage = (event) => { app.innerHTML += event.data + "<br>"; };
  source.addEventListener("end", (event) => {
    app.innerHTML += event.data + "<br>";
    source.close();  // done: stop the browser from reconnecting
  });
</script>
"""


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE


@app.get("/clock")
async def clock(
    request: Request,
    count: int = Query(10, ge=0, le=1000),
    interval: float = Query(1.0, ge=0, le=60),
) -> EventSourceResponse:
    resume = last_event_id(request)
    first = int(resume) + 1 if resume is not None and resume.isdigit() else 0

    async def ticks() -> AsyncIterator[Event]:
        for n in range(first, count):
            if n > first:
                await asyncio.sleep(interval)
            yield Event(data=f"{datetime.now():%Y-%m-%d %H:%M:%S} tick {n}", id=str(n))
        yield Event(data="bye", event="end")

    return EventSourceResponse(ticks())


if __name__ == "__main__":
    args = arguments(__doc__, 8001).parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
