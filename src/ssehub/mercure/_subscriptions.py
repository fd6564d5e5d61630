"""Active subscriptions (draft-dunglas-mercure-07, "Active Subscriptions"), off by default.

    "When a new subscription is established, the hub MUST dispatch a private update [...] on
    the topic /.well-known/mercure/subscriptions/{topic}/{subscriber}", and another with
    `"active": false` when it ends. `GET /.well-known/mercure/subscriptions[/{topic}[/{sub}]]`
    answers the active ones as JSON-LD, with `lastEventID` so a client can subscribe to the
    subscription updates from there without a gap.

The list is built from the subscription updates themselves, as every hub process receives them
(its own and those of every other process on the same Redis): each process reads them with a
reader on the hub, so every node answers with the subscriptions of every node, from the moment
it started. A process killed without closing its streams leaves them listed on the other nodes
until those restart (no update says they ended). The updates carry each
subscriber's `mercure.payload` claim. Only the subscriptions a caller's `mercure.subscribe`
selectors may receive (their update's topic) are listed to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from ssehub.api import Api, HTTPError, Reply, Request, Response
from ssehub.auth import Grants
from ssehub.mercure._discovery import HUB_PATH
from ssehub.model import Draft, Publication, Record, TopicSelector

__all__ = ["SUBSCRIPTIONS_PATH", "Presence"]

log = logging.getLogger("ssehub.mercure")

SUBSCRIPTIONS_PATH = f"{HUB_PATH}/subscriptions"
CONTEXT = "https://mercure.rocks/"
_UNDER = SUBSCRIPTIONS_PATH + "/"


class _Everyone:
    """The presence table's audience: it reads every subscription update, private as they are
    (what it answers is filtered by each caller's grants)."""

    key = "ssehub.mercure.presence"

    def may_receive(self, topics: tuple[str, ...]) -> bool:
        return True


class Presence:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.active: dict[str, dict[str, Any]] = {}  # subscription topic -> its JSON-LD
        self._publishing: set[asyncio.Task[list[str]]] = set()
        selector = TopicSelector(_UNDER + "{+subscription}", lambda topic: topic.startswith(_UNDER))
        api.hub.add_reader(self, (selector,), self._seen, _Everyone())

    # -- the updates ----------------------------------------------------------------------------

    def connected(self, selectors: tuple[str, ...], grants: Grants | None) -> Callable[[], None]:
        """Announce a new subscription; the callable announces its end."""
        subscriber = f"urn:uuid:{uuid.uuid4()}"
        payload = None if grants is None else grants.payload
        self._publish(self._updates(selectors, subscriber, payload, active=True))
        return lambda: self._publish(self._updates(selectors, subscriber, payload, active=False))

    def _updates(
        self, selectors: tuple[str, ...], subscriber: str, payload: object, *, active: bool
    ) -> list[Draft]:
        drafts = []
        for selector in selectors:
            topic = f"{_UNDER}{quote(selector, safe='')}/{quote(subscriber, safe='')}"
            body: dict[str, Any] = {
                "@context": CONTEXT,
                "id": topic,
                "type": "Subscription",
                "topic": selector,
                "subscriber": subscriber,
                "active": active,
            }
            if payload is not None:
                body["payload"] = payload
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            try:
                drafts.append(Publication((topic,), data, private=True).draft())
            except ValueError:  # a selector too long to name in a topic: not reported
                continue
        return drafts

    def _publish(self, drafts: list[Draft]) -> None:
        if not drafts:
            return
        hub = self.api.hub
        try:
            if hub.publish_drafts_now(drafts) is not None:
                return
        except Exception as error:  # the store is full or away: presence is best effort
            log.warning("subscription updates not published: %s", error)
            return
        task = asyncio.get_running_loop().create_task(hub.publish_drafts(drafts))
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[list[str]]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("subscription updates not published: %s", task.exception())

    def _seen(self, record: Record) -> None:
        try:
            update = json.loads(record.data)
            topic, active = update["id"], update["active"]
        except (ValueError, KeyError, TypeError):
            return  # not one of ours: someone published on the subscriptions topics
        if active is True:
            del update["@context"]
            self.active[topic] = update
        else:
            self.active.pop(topic, None)

    # -- GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]] ------------------------

    def answer(self, request: Request) -> Reply | Awaitable[Reply]:
        grants = self.api.access.subscriber(request)
        if inspect.isawaitable(grants):
            return self._answer_later(request, grants)
        return self._answer(request, grants)

    async def _answer_later(self, request: Request, grants: Awaitable[Grants]) -> Reply:
        return self._answer(request, await grants)

    def _answer(self, request: Request, grants: Grants | None) -> Response:
        path = request.path
        if "%" in path:  # the native server's raw path; ASGI's is decoded already
            path = unquote(path)
        rest = path[len(SUBSCRIPTIONS_PATH) :].strip("/")
        topic, _, subscriber = rest.rpartition("/")
        if not subscriber.startswith("urn:uuid:"):  # no subscriber: the topic is all of it
            topic, subscriber = rest, ""
        visible = [
            subscription
            for subscription in self.active.values()
            if grants is not None
            and grants.may_receive((subscription["id"],))
            and (not topic or subscription["topic"] == topic)
            and (not subscriber or subscription["subscriber"] == subscriber)
        ]
        last_event_id = self.api.hub.latest
        if subscriber:
            if not visible:
                raise HTTPError(404, f"no active subscription {rest!r} that you may see")
            body: dict[str, Any] = {"@context": CONTEXT, **visible[0]}
            body["lastEventID"] = last_event_id
        else:
            body = {
                "@context": CONTEXT,
                "id": request.path,
                "type": "Subscriptions",
                "lastEventID": last_event_id,
                "subscriptions": visible,
            }
        content = json.dumps(body, ensure_ascii=False).encode()
        etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
        headers = [("ETag", etag), ("Cache-Control", "no-cache")]
        if etag in request.headers.get("if-none-match", ""):
            return Response(304, b"", "", headers)
        return Response(200, content, "application/ld+json", headers)
