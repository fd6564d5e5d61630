"""Chromium's own `EventSource` on ssehub's `/.well-known/mercure`, updates published by a
Symfony app (Debian's php-symfony-mercure): the page gets the public updates and, with the
`mercureAuthorization` cookie, the private ones its claims allow, and nothing else; it resumes
from the publisher's ids when the connection drops."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page
from support.hub_process import HubProcess
from support.symfony import symfony_publish
from support.tcp_proxy import CuttableProxy

from ssehub.auth import mint_token
from ssehub.mercure import HUB_PATH

from .conftest import Pages

SECRET = "ssehub-browser-tests-hmac-secret-" + "k" * 32
BOOK = "https://example.com/books/1"
PUBLISHER = mint_token(SECRET, publish=["*"], ttl=600, now=time.time())

# `listen(name, url)`: a plain EventSource, every message (and "book" event) recorded.
LISTEN = """([name, url]) => {
    window.got = window.got || {};
    const got = window.got[name] = [];
    const source = new EventSource(url, {withCredentials: true});
    const record = (e) => got.push([e.type, e.data, e.lastEventId]);
    source.onmessage = record;
    source.addEventListener("book", record);
    source.addEventListener("open", () => got.push(["open", "", ""]));
    return true;
}"""


def received(page: Page, name: str, count: int) -> list[list[str]]:
    page.wait_for_function(
        "([name, count]) => got[name].filter((e) => e[0] !== 'open').length >= count",
        arg=[name, count],
    )
    events: list[list[str]] = page.evaluate("(name) => got[name]", name)
    return [event for event in events if event[0] != "open"]


def opened(page: Page, name: str, times: int = 1) -> None:
    page.wait_for_function(
        "([name, times]) => got[name].filter((e) => e[0] === 'open').length >= times",
        arg=[name, times],
    )


def test_eventsource_gets_public_and_its_private_updates(
    start_hub: Callable[..., HubProcess], pages: Pages
) -> None:
    hub = start_hub("--jwt-key", SECRET, "--allow-anonymous", "--retry", "250")
    reader = mint_token(SECRET, subscribe=["https://example.com/users/1/{+x}"], ttl=600)
    pages.context.add_cookies([{"name": "mercureAuthorization", "value": reader, "url": hub.url}])
    page = pages.open(f"{hub.url}/?connect=0")
    page.evaluate(LISTEN, ["all", "/.well-known/mercure?topic=*"])
    page.evaluate(LISTEN, ["books", "/.well-known/mercure?topic=https://example.com/books/{id}"])
    opened(page, "all")
    opened(page, "books")
    ids = symfony_publish(
        hub.url,
        PUBLISHER,
        [
            {"topics": "https://example.com/users/2/cart", "data": "not yours", "private": True},
            {"topics": "https://example.com/users/1/cart", "data": "yours", "private": True},
            {
                "topics": "https://example.com/books/1",
                "data": "Dune",
                "id": "urn:b1",
                "type": "book",
            },
        ],
    )
    assert received(page, "all", 2) == [
        ["message", "yours", ids[1]],
        ["book", "Dune", "urn:b1"],
    ]
    assert received(page, "books", 1) == [["book", "Dune", "urn:b1"]]


def test_eventsource_resumes_from_a_publisher_id(
    start_hub: Callable[..., HubProcess], pages: Pages
) -> None:
    hub = start_hub("--jwt-key", SECRET, "--allow-anonymous", "--retry", "250")
    proxy = CuttableProxy("127.0.0.1", int(hub.url.rsplit(":", 1)[1])).start()
    try:
        page = pages.open(f"{proxy.url}/?connect=0")
        page.evaluate(LISTEN, ["books", "/.well-known/mercure?topic=https://example.com/books/1"])
        opened(page, "books")
        book = [{"topics": "https://example.com/books/1", "type": "book"}]
        symfony_publish(hub.url, PUBLISHER, [{**book[0], "data": "v1", "id": "urn:v1"}])
        assert received(page, "books", 1) == [["book", "v1", "urn:v1"]]
        # The reconnection waits at the proxy while v2 is published: only a resume brings it.
        proxy.hold(HUB_PATH)
        assert proxy.cut(HUB_PATH) == 1
        symfony_publish(hub.url, PUBLISHER, [{**book[0], "data": "v2", "id": "urn:v2"}])
        proxy.wait_for(lambda: bool(proxy.seen(HUB_PATH, "last-event-id")))
        proxy.release()
        assert received(page, "books", 2)[1] == ["book", "v2", "urn:v2"]
        [again] = proxy.seen(HUB_PATH, "last-event-id")
        assert again.headers["last-event-id"] == "urn:v1"
    finally:
        proxy.stop()
