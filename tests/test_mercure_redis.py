"""Several `ssehub serve` nodes on one Redis make one Mercure hub: an update published through
`/.well-known/mercure` on one node reaches the subscribers of another, with its publisher id,
which resumes on any node; a duplicate id is refused whichever node is asked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.hub_http import open_position
from support.hub_process import HubProcess
from support.mercure_http import mercure_publish, mercure_stream
from support.redis_server import RedisServer

BOOK = "https://example.com/books/1"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


def test_two_nodes_one_mercure_hub(start_hub: Callable[..., HubProcess], redis_url: str) -> None:
    one = start_hub("--backend", redis_url).url
    two = start_hub("--backend", redis_url).url
    with (
        mercure_stream(two, BOOK) as exact,
        mercure_stream(two, "https://example.com/books/{id}") as template,
    ):
        open_position(exact)
        open_position(template)
        first = mercure_publish(one, [("topic", BOOK), ("data", "v1"), ("id", "urn:v1")])
        assert first.status_code == 200 and first.text == "urn:v1"
        second = mercure_publish(one, [("topic", BOOK), ("data", "v2"), ("type", "book")]).text
        for s in (exact, template):
            assert [(e.id, e.event, e.data) for e in s.take(2)] == [
                ("urn:v1", "message", "v1"),
                (second, "book", "v2"),
            ]
    duplicate = mercure_publish(two, [("topic", BOOK), ("id", "urn:v1")])
    assert duplicate.status_code == 409
    for node in (one, two):
        with mercure_stream(node, BOOK, params=[("lastEventID", "urn:v1")]) as resumed:
            assert resumed.response.headers["last-event-id"] == "urn:v1"
            assert [e.id for e in resumed.take(1)] == [second]
