"""The server side of `ssehub serve --demo`: the routes and feeds behind `/demos/*.html`.

Every demo is an ordinary hub client: it publishes to topics and answers with a `StreamReply`,
so the pages get ids, replay and reconnects from the hub itself.

- live clock   `GET /demo/clock?session=S[&count=10&interval=1000]`: a tick a second into topic
               `clock.S`, then an `end` event (the page closes its EventSource on it);
- notifications `POST /demo/notify` `{"title", "body", "level"}`: published to `notifications`
               as a `notification` event; every open tab shows it;
- AI chat      `POST /demo/chat` `{"id": "<client-chosen id>", "prompt": "..."}`: a fake model
               streams its answer token by token (`token` events, then `done`) into topic
               `chat.<id>`; the reply is that topic's stream. A reconnect (same body, with
               `Last-Event-ID`) resumes the same answer exactly where it stopped;
- log tail     nothing here: lines published to topic `logs` (`ssehub publish --topic logs -`,
               or POST /publish) are the feed;
- dashboard    `demo_feeds` publishes the hub's own counters and a synthetic metric to
               `dashboard` every second.

Session ids are chosen by the client, so a reconnect names the same clock or answer. A session
is started once; a request for a known session resumes it from the `Last-Event-ID` it sends, or
from the session's start when it sends none (a drop before the first event loses nothing).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from ssehub.api import (
    Handler,
    HTTPError,
    Request,
    Response,
    StreamReply,
    json_response,
    last_event_id,
)
from ssehub.hub import Hub

__all__ = ["answer", "answer_tokens", "demo_feeds", "demo_routes"]

_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_SESSIONS = 1000  # remembered sessions (for resumes); older ones are forgotten
_MAX_RUNNING = 200  # clocks and answers generating at once
_TOKEN_DELAY = 0.04  # seconds between two tokens of the fake model
_LEVELS = ("info", "success", "warning", "error")
_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+\s*|\s+")


def answer(prompt: str) -> str:
    """The fake model's whole answer to `prompt` (deterministic)."""
    prompt = " ".join(prompt.split())
    if re.search(f"[{_CJK}]", prompt):
        return (
            f"这是对“{prompt}”的回复。SSE 非常适合实现这种流式输出效果，"
            "用户可以实时看到内容生成的过程。每个字都是一个带 id 的事件；"
            "连接断开后，浏览器带着 Last-Event-ID 重新连接，"
            "hub 从历史中补发缺失的部分，不丢也不重。"
        )
    return (
        f"You asked: “{prompt}”. Here is the answer, streamed one token at a time. "
        "Each token is a Server-Sent Event with its own id, published to this answer's topic "
        "on the hub. If the connection drops, the client reconnects with Last-Event-ID and the "
        "hub replays exactly the tokens it missed: none lost, none repeated. Plain HTTP, one "
        "POST, and the typewriter keeps typing."
    )


def answer_tokens(prompt: str) -> list[str]:
    """The answer split the way the fake model streams it: words (with their trailing space)
    and single CJK characters. `"".join(answer_tokens(p)) == answer(p)`."""
    return _TOKEN.findall(answer(prompt))


class _Demos:
    """Per-hub demo state: started sessions and the tasks feeding them."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sessions: OrderedDict[str, str] = OrderedDict()  # topic -> hub position at start
        self.tasks: set[asyncio.Task[None]] = set()

    # -- sessions ----------------------------------------------------------------------------

    def resume_or_start(
        self,
        request: Request,
        topic: str,
        feed: Callable[[], Coroutine[Any, Any, None]],
    ) -> StreamReply:
        resume_from = last_event_id(request)
        start = self.sessions.get(topic)
        if start is None:
            if resume_from is not None:
                raise HTTPError(
                    410, f"{topic} is not running here (the hub restarted?); start a new one"
                )
            if len(self.tasks) >= _MAX_RUNNING:
                raise HTTPError(429, "too many demo sessions running; try again shortly")
            # Streaming from the position before the feed starts means nothing it publishes
            # can be missed, whichever runs first: the feed or the stream's registration.
            start = self.hub.latest
            self.sessions[topic] = start
            while len(self.sessions) > _MAX_SESSIONS:
                self.sessions.popitem(last=False)
            task = asyncio.ensure_future(feed())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return StreamReply((topic,), resume_from or start)

    def cancel_all(self) -> None:
        for task in tuple(self.tasks):
            task.cancel()

    # -- live clock --------------------------------------------------------------------------

    def clock(self, request: Request) -> StreamReply:
        session = _session(request.query.get("session", [""])[-1], "session")
        count = _int_query(request, "count", 10, 1, 100)
        interval = _int_query(request, "interval", 1000, 50, 10_000) / 1000
        topic = f"clock.{session}"
        return self.resume_or_start(request, topic, lambda: self._tick(topic, count, interval))

    async def _tick(self, topic: str, count: int, interval: float) -> None:
        for n in range(1, count + 1):
            now = datetime.now().astimezone()
            data = {"count": n, "of": count, "time": now.isoformat(timespec="milliseconds")}
            await self.hub.publish(topic, json.dumps(data))
            await asyncio.sleep(interval)
        await self.hub.publish(topic, json.dumps({"count": count, "text": "the end"}), "end")

    # -- notifications -----------------------------------------------------------------------

    async def notify(self, request: Request) -> Response:
        fields = _json_object(request)
        title = _text_field(fields, "title", 1, 120)
        body = _text_field(fields, "body", 0, 1000)
        level = fields.get("level", "info")
        if level not in _LEVELS:
            raise HTTPError(400, f"'level' must be one of {', '.join(_LEVELS)}", field="level")
        sent = datetime.now().astimezone().isoformat(timespec="seconds")
        data = {"title": title, "body": body, "level": level, "at": sent}
        event_id = await self.hub.publish(
            "notifications", json.dumps(data, ensure_ascii=False), "notification"
        )
        return json_response({"id": event_id})

    # -- AI chat -----------------------------------------------------------------------------

    def chat(self, request: Request) -> StreamReply:
        fields = _json_object(request)
        session = _session(fields.get("id"), "id")
        prompt = _text_field(fields, "prompt", 1, 500)
        topic = f"chat.{session}"
        return self.resume_or_start(request, topic, lambda: self._generate(topic, prompt))

    async def _generate(self, topic: str, prompt: str) -> None:
        tokens = answer_tokens(prompt)
        for index, token in enumerate(tokens):
            await asyncio.sleep(_TOKEN_DELAY)
            data = json.dumps({"i": index, "t": token}, ensure_ascii=False)
            await self.hub.publish(topic, data, "token")
        await self.hub.publish(topic, json.dumps({"tokens": len(tokens)}), "done")

    # -- dashboard ---------------------------------------------------------------------------

    async def dashboard(self) -> None:
        hub = self.hub
        rng = random.Random(7)
        queue = 20.0
        tick = 0
        while True:
            tick += 1
            # A synthetic "queue depth": a slow wave plus a bounded random walk.
            queue = min(100.0, max(0.0, queue + rng.uniform(-6, 6)))
            load = 40 + 25 * math.sin(tick / 9) + queue * 0.3
            data = {
                "time": datetime.now().astimezone().isoformat(timespec="seconds"),
                "published": hub.stats.published,
                "delivered": hub.stats.delivered,
                "subscribers": hub.subscriber_count(),
                "replays": hub.stats.replays,
                "load": round(load, 1),
            }
            await hub.publish("dashboard", json.dumps(data), "metrics")
            await asyncio.sleep(1.0)


_demos: weakref.WeakKeyDictionary[Hub, _Demos] = weakref.WeakKeyDictionary()


def _state(hub: Hub) -> _Demos:
    demos = _demos.get(hub)
    if demos is None:
        demos = _demos[hub] = _Demos(hub)
    return demos


def _session(value: object, name: str) -> str:
    if not isinstance(value, str) or _SESSION.fullmatch(value) is None:
        raise HTTPError(400, f"'{name}' must be 1-64 letters, digits, '-' or '_'", field=name)
    return value


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    values = request.query.get(name)
    if not values:
        return default
    text = values[-1]
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise HTTPError(400, f"'{name}' must be a whole number from {low} to {high}", field=name)
    return int(text)


def _json_object(request: Request) -> dict[str, Any]:
    if request.media_type != "application/json":
        raise HTTPError(415, "send a JSON object (Content-Type: application/json)")
    try:
        fields = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPError(400, f"malformed JSON: {error}") from None
    if not isinstance(fields, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return fields


def _text_field(fields: dict[str, Any], name: str, shortest: int, longest: int) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str) or not shortest <= len(value.strip()) <= longest:
        raise HTTPError(
            400, f"'{name}' must be a string of {shortest} to {longest} characters", field=name
        )
    return value.strip()


def demo_routes(hub: Hub) -> dict[tuple[str, str], Handler]:
    """The demo endpoints, for `ServerConfig(extra_routes=...)`."""
    demos = _state(hub)
    return {
        ("GET", "/demo/clock"): demos.clock,
        ("POST", "/demo/notify"): demos.notify,
        ("POST", "/demo/chat"): demos.chat,
    }


async def demo_feeds(hub: Hub) -> None:
    """The background publishers of the demos; runs until cancelled (server shutdown), then
    stops the clocks and answers still generating."""
    demos = _state(hub)
    try:
        await demos.dashboard()
    finally:
        demos.cancel_all()
