"""Mercure's active subscriptions (`--subscriptions`) on both entry points, and across two
Redis nodes: the private updates on connect and disconnect, and the JSON-LD API with
`lastEventID`, ETag/304 and authorization by `mercure.subscribe`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx
import pytest
from support.hub_http import Stream, open_position
from support.hub_process import HubProcess
from support.mercure_http import HUB, mercure_stream
from support.redis_server import RedisServer

from ssehub.auth import mint_token

SECRET = "a-secret-of-at-least-32-bytes-for-hs256!"
BOOK = "https://example.com/books/1"
SUBSCRIPTIONS = f"{HUB}/subscriptions"
WATCHER = mint_token(
    SECRET, subscribe=[f"{SUBSCRIPTIONS}{{/topic}}{{/subscriber}}"], ttl=600, now=time.time()
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def reader(*selectors: str, payload: object = None) -> dict[str, str]:
    return bearer(mint_token(SECRET, subscribe=list(selectors), ttl=600, payload=payload))


def update_about(watcher: Stream, topic: str) -> dict[str, object]:
    """The next subscription update about a subscription to `topic` (the watcher's own
    subscription has updates too)."""
    while True:
        update: dict[str, object] = json.loads(watcher.next().data)
        if update["topic"] == topic:
            return update


def of(body: dict[str, list[dict[str, str]]], topic: str) -> list[dict[str, str]]:
    return [s for s in body["subscriptions"] if s["topic"] == topic]


def listing(url: str, path: str = "", token: str = WATCHER) -> httpx.Response:
    return httpx.get(f"{url}{SUBSCRIPTIONS}{path}", headers=bearer(token))


def test_off_by_default_and_tokens_needed(start_api: Callable[..., str]) -> None:
    assert listing(start_api("--jwt-key", SECRET)).status_code == 404
    url = start_api("--jwt-key", SECRET, "--subscriptions")
    assert httpx.get(f"{url}{SUBSCRIPTIONS}").status_code == 401
    assert listing(url).status_code == 200


def test_updates_on_connect_and_disconnect_and_the_api(start_api: Callable[..., str]) -> None:
    url = start_api("--jwt-key", SECRET, "--allow-anonymous", "--subscriptions")
    watch_params = [("topic", f"{SUBSCRIPTIONS}/{{topic}}/{{subscriber}}")]
    with mercure_stream(url, params=watch_params, headers=bearer(WATCHER)) as watcher:
        open_position(watcher)
        with mercure_stream(url, BOOK, headers=reader(BOOK, payload={"user": 7})):
            connected = update_about(watcher, BOOK)
            subscriber = quote(str(connected["subscriber"]), safe="")
            topic = f"{SUBSCRIPTIONS}/{quote(BOOK, safe='')}/{subscriber}"
            assert connected == {
                "@context": "https://mercure.rocks/",
                "id": topic,
                "type": "Subscription",
                "topic": BOOK,
                "subscriber": connected["subscriber"],
                "active": True,
                "payload": {"user": 7},
            }
            everything = listing(url)
            assert everything.status_code == 200
            assert everything.headers["content-type"] == "application/ld+json"
            body = everything.json()
            assert body["type"] == "Subscriptions" and body["lastEventID"]
            [listed] = of(body, BOOK)
            assert listed["id"] == topic and listed["payload"] == {"user": 7}
            # Filtered by topic, one by subscriber.
            by_topic = listing(url, f"/{quote(BOOK, safe='')}").json()["subscriptions"]
            assert [s["id"] for s in by_topic] == [topic]
            assert listing(url, "/elsewhere").json()["subscriptions"] == []
            one = listing(url, topic[len(SUBSCRIPTIONS) :])
            assert one.status_code == 200 and one.json()["subscriber"] == connected["subscriber"]
            # ETag / 304
            etag = everything.headers["etag"]
            again = httpx.get(
                f"{url}{SUBSCRIPTIONS}", headers={**bearer(WATCHER), "If-None-Match": etag}
            )
            assert again.status_code == 304
        ended = update_about(watcher, BOOK)
        assert (ended["id"], ended["active"]) == (topic, False)
        assert of(listing(url).json(), BOOK) == []
    assert listing(url, topic[len(SUBSCRIPTIONS) :]).status_code == 404


def test_only_what_the_caller_may_receive(start_api: Callable[..., str]) -> None:
    url = start_api("--jwt-key", SECRET, "--allow-anonymous", "--subscriptions")
    watch = [("topic", f"{SUBSCRIPTIONS}/{{topic}}/{{subscriber}}")]
    with mercure_stream(url, params=watch, headers=bearer(WATCHER)) as watcher:
        open_position(watcher)
        with mercure_stream(url, BOOK), mercure_stream(url, "other"):
            update_about(watcher, BOOK)
            update_about(watcher, "other")
            assert len(listing(url, f"/{quote(BOOK, safe='')}").json()["subscriptions"]) == 1
            narrow = mint_token(
                SECRET, subscribe=[f"{SUBSCRIPTIONS}/other/{{subscriber}}"], ttl=600
            )
            [only] = listing(url, token=narrow).json()["subscriptions"]
            assert only["topic"] == "other"
            nobody = mint_token(SECRET, subscribe=["other"], ttl=600)
            assert listing(url, token=nobody).json()["subscriptions"] == []
            anonymous = httpx.get(f"{url}{SUBSCRIPTIONS}")
            assert anonymous.status_code == 200 and anonymous.json()["subscriptions"] == []
    # An anonymous subscriber of everything never sees subscription updates (private).
    with mercure_stream(url, "*") as anonymous:
        open_position(anonymous)
        with mercure_stream(url, BOOK):
            httpx.post(
                f"{url}{HUB}",
                data={"topic": "marker", "data": "after"},
                headers=bearer(mint_token(SECRET, publish=["*"], ttl=600)),
            )
            assert anonymous.next().data == "after"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


def test_presence_spans_redis_nodes(start_hub: Callable[..., HubProcess], redis_url: str) -> None:
    args = ("--backend", redis_url, "--jwt-key", SECRET, "--allow-anonymous", "--subscriptions")
    one = start_hub(*args).url
    two = start_hub(*args).url
    watch = [("topic", f"{SUBSCRIPTIONS}/{{topic}}/{{subscriber}}")]
    with mercure_stream(two, params=watch, headers=bearer(WATCHER)) as watcher:
        open_position(watcher)
        with mercure_stream(one, BOOK):
            assert update_about(watcher, BOOK)["active"] is True  # seen on node two
            assert len(of(listing(two).json(), BOOK)) == 1
        assert update_about(watcher, BOOK)["active"] is False
        assert of(listing(two).json(), BOOK) == []
