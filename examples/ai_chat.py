"""AI chat streamed token by token over `POST /chat`, resumable mid-answer, in FastAPI.

The tutorials' AI streaming demo: the answer arrives as `data: {"content": "<token>"}` events and
ends with `data: {"done": true}`, so their fetch-based client works unchanged. On top of it, a
client that loses the connection mid-answer resumes without losing or repeating a token: it
POSTs the same body again (the same answer `id`) with a `Last-Event-ID` header — exactly what
`ssehub.client.AsyncEventSource(url, method="POST", json=body)` does by itself on reconnect.

How: the (fake, deterministic) model runs as a task of its own, independent of any connection,
and publishes each token to the hub topic `chat.<id>`; a response is a subscription to that
topic from the client's Last-Event-ID, so the hub's history fills any gap exactly.

Run:  .venv/bin/python examples/ai_chat.py                  # uvicorn on http://127.0.0.1:8003/
Try:  curl -N http://127.0.0.1:8003/chat -H 'Content-Type: application/json' \\
           -d '{"id": "a1", "message": "hello"}'
      then again with -H 'Last-Event-ID: <an id it printed>' to resume after that token.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from _cli import arguments
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from ssehub import Event, Hub
from ssehub.asgi import EventSourceResponse, last_event_id

TOKEN_DELAY = 0.05  # seconds between two tokens of the fake model
MAX_ANSWERS = 1000  # answers remembered for resuming; the oldest are forgotten

hub = Hub(history=10_000)
# answer id -> the hub position just before its first token: where a fresh stream starts.
answers: OrderedDict[str, str] = OrderedDict()
generating: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub:
        yield
    for task in generating:
        task.cancel()


app = FastAPI(title="ssehub AI chat", lifespan=lifespan)


def fake_model(message: str) -> list[str]:
    """The answer's tokens: one per character, as the tutorial's demo sends them. It answers
    in Chinese, the seed tutorial's language, when asked in Chinese; in English otherwise."""
    if re.search("[\u4e00-\u9fff]", message):
        return list(
            f"这是对“{message}”的回复。SSE 非常适合实现这种流式输出效果，"
            "用户可以实时看到内容生成的过程，体验更加流畅自然。"
        )
    return list(
        f"You said “{message}”. This answer arrives one character at a time, each one a "
        "Server-Sent Event: streaming output is what SSE is made for."
    )


async def generate(answer_id: str, message: str) -> None:
    topic = f"chat.{answer_id}"
    for token in fake_model(message):
        await asyncio.sleep(TOKEN_DELAY)  # the model "thinking"
        await hub.publish(topic, json.dumps({"content": token}, ensure_ascii=False))
    await hub.publish(topic, json.dumps({"done": True}))


class ChatRequest(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="chosen by the client")
    message: str = Field(min_length=1, max_length=2000)


@app.post("/chat")
async def chat(body: ChatRequest, request: Request) -> EventSourceResponse:
    resume = last_event_id(request)
    if body.id not in answers:
        if resume is not None:
            raise HTTPException(404, f"no answer {body.id!r} to resume")
        answers[body.id] = str(hub.latest)
        while len(answers) > MAX_ANSWERS:
            answers.popitem(last=False)
        task = asyncio.create_task(generate(body.id, body.message))
        generating.add(task)
        task.add_done_callback(generating.discard)

    async def tokens() -> AsyncIterator[Event]:
        after = resume if resume is not None else answers[body.id]
        async with hub.subscribe(f"chat.{body.id}", last_event_id=after) as subscription:
            async for event in subscription:
                yield event
                if event.event == "reset" or json.loads(event.data).get("done"):
                    return

    return EventSourceResponse(tokens(), headers={"X-Answer-Id": body.id})


PAGE = """<!doctype html>
<meta charset="utf-8"><title>SSE streaming chat</title>
<h1>SSE streaming chat</h1>
<div id="chat" style="white-space: pre-wrap"></div>
<input id="input" placeholder="Type a message..."> <button onclick="send()">Send</button>
<script>
  async function send() {
    const message = document.getElementById("input").value.trim();
    if (!message) return;
    const chat = document.getElementById("chat");
    chat.append(`You: ${message}\\nAI: `);
    const id = crypto.randomUUID();
    let lastId = null;
    for (;;) {  // reconnect until the answer is complete, resuming after the last token
      const headers = {"Content-Type": "application/json"};
      if (lastId) headers["Last-Event-ID"] = lastId;
      try {
        const response = await fetch("/chat", {method: "POST", headers,
                                                body: JSON.stringify({id, message})});
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const {done, value} = await reader.read();
          if (done) break;
          buffer += value;
          const blocks = buffer.split("\\n\\n");
          buffer = blocks.pop();
          for (const block of blocks) {
            const id = block.match(/^id: (.*)$/m), data = block.match(/^data: (.*)$/m);
            if (id) lastId = id[1];
            if (!data) continue;
            const payload = JSON.parse(data[1]);
            if (payload.done) { chat.append("\\n"); return; }
            chat.append(payload.content);
          }
        }
      } catch (error) { /* dropped: go round and resume */ }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
</script>
"""


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE


if __name__ == "__main__":
    parser = arguments(__doc__, 8003)
    parser.add_argument("--token-delay", type=float, default=TOKEN_DELAY, help="seconds")
    args = parser.parse_args()
    TOKEN_DELAY = args.token_delay
    uvicorn.run(app, host=args.host, port=args.port)
