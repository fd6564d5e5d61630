"""Notifications broadcast to every connected client through `POST /notify`, in FastAPI.

The tutorials' Express demo, with ssehub's hub doing the fan-out: every open page (or curl)
receives each notification, encoded once for all of them; a client that reconnects gets what it
missed (the browser sends Last-Event-ID by itself). The hub's own HTTP API is mounted as well,
under /hub (`/hub/events?topic=...`, `POST /hub/publish`).

Run:  .venv/bin/python examples/notifications.py           # uvicorn on http://127.0.0.1:8002/
Try:  curl -N http://127.0.0.1:8002/events                 # in a few terminals, then:
      curl -X POST http://127.0.0.1:8002/notify -H 'Content-Type: application/json' \\
           -d '{"title": "Deploy finished", "level": "success"}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from _cli import arguments
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from ssehub.asgi import HubStreamResponse, hub_app, hub_stream
from ssehub.hub import Hub

hub = Hub(history=100)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub:
        yield


app = FastAPI(title="ssehub notifications", lifespan=lifespan)
app.mount("/hub", hub_app(hub))


class Notification(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=2000)
    level: Literal["info", "success", "warning", "error"] = "info"


PAGE = """<!doctype html>
<meta charset="utf-8"><title>Notifications</title>
<h1>Notifications</h1>
<form id="send"><input id="title" placeholder="title" required> <button>notify</button></form>
<ul id="list"></ul>
<script>
  const list = document.getElementById("list");
  const source = new EventSource("/events");
  source.addEventListener("notification", (event) => {
    const note = JSON.parse(event.data);
    const item = document.createElement("li");
    item.textContent = `[${note.level}] ${note.title} ${note.body}`;
    list.prepend(item);
  });
  document.getElementById("send").onsubmit = async (event) => {
    event.preventDefault();
    const title = document.getElementById("title").value;
    await fetch("/notify", {method: "POST", headers: {"Content-Type": "application/json"},
                            body: JSON.stringify({title})});
  };
</script>
"""


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE


@app.get("/events")
async def events(request: Request) -> HubStreamResponse:
    return hub_stream(hub, request, "notifications")


@app.post("/notify")
async def notify(note: Notification) -> dict[str, object]:
    event_id = await hub.publish("notifications", note.model_dump_json(), event="notification")
    return {"success": True, "id": event_id}


if __name__ == "__main__":
    args = arguments(__doc__, 8002).parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
