"""A Symfony app publishing to ssehub: Debian's php-symfony-mercure (0.6), its `Hub` class with
a static token, exactly as `MERCURE_URL` / `MERCURE_JWT_SECRET` configure it; subscribers over
raw HTTP get what they should and nothing else. (The browser side: tests/browser.)"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from support.hub_http import open_position
from support.hub_process import HubProcess
from support.mercure_http import mercure_stream
from support.symfony import symfony_publish

from ssehub.auth import mint_token

SECRET = "a-secret-of-at-least-32-bytes-for-hs256!"


def jwt(*, publish: tuple[str, ...] = (), subscribe: tuple[str, ...] = ()) -> str:
    return mint_token(SECRET, publish=publish, subscribe=subscribe, ttl=600, now=time.time())


UPDATES = [
    {"topics": "https://example.com/books/1", "data": '{"title": "Dune"}'},
    {
        "topics": ["https://example.com/users/1/cart", "https://example.com/carts/9"],
        "data": "your cart",
        "private": True,
        "id": "urn:uuid:cart-1",
        "type": "cart",
    },
    {"topics": "https://example.com/users/2/cart", "data": "not yours", "private": True},
    {
        "topics": ["https://example.com/books/2", "https://example.com/shelf"],
        "data": "new book",
        "id": "urn:uuid:book-2",
        "type": "book",
        "retry": 1500,
    },
]


def test_symfony_hub_publishes_and_subscribers_get_exactly_their_updates(
    start_hub: Callable[..., HubProcess],
) -> None:
    url = start_hub("--jwt-key", SECRET, "--allow-anonymous").url
    user_1 = {"Authorization": f"Bearer {jwt(subscribe=('https://example.com/users/1/{+x}',))}"}
    with (
        mercure_stream(url, "https://example.com/{+path}") as anonymous,
        mercure_stream(url, "*", headers=user_1) as user,
        mercure_stream(url, "https://example.com/shelf") as shelf,
    ):
        for s in (anonymous, user, shelf):
            open_position(s)
        ids = symfony_publish(url, jwt(publish=("*",)), UPDATES)
        assert ids[1] == "urn:uuid:cart-1" and ids[3] == "urn:uuid:book-2"
        assert [(e.id, e.event, e.data) for e in anonymous.take(2)] == [
            (ids[0], "message", '{"title": "Dune"}'),
            (ids[3], "book", "new book"),
        ]
        assert [(e.id, e.event, e.data) for e in user.take(3)] == [
            (ids[0], "message", '{"title": "Dune"}'),
            ("urn:uuid:cart-1", "cart", "your cart"),
            (ids[3], "book", "new book"),
        ]
        assert [e.data for e in shelf.take(1)] == ["new book"]
        assert shelf.decoder.retry == 1500
    # Resuming from a Symfony-chosen id, as a reconnecting EventSource does.
    with mercure_stream(url, "*", headers={**user_1, "Last-Event-ID": "urn:uuid:cart-1"}) as s:
        assert s.response.headers["last-event-id"] == "urn:uuid:cart-1"
        assert [e.id for e in s.take(1)] == ["urn:uuid:book-2"]


def test_symfony_sees_a_refusal_as_an_error(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--jwt-key", SECRET).url
    narrow = jwt(publish=("https://example.com/books/{id}",))
    assert symfony_publish(url, narrow, [{"topics": "https://example.com/books/1"}])
    with pytest.raises(AssertionError, match="Failed to send an update"):
        symfony_publish(url, narrow, [{"topics": "https://example.com/users/1"}])
