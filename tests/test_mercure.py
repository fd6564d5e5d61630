"""ssehub as a Mercure hub (`/.well-known/mercure`), through both entry points (`ssehub serve`
and `hub.asgi_app()` under uvicorn), over real HTTP. The protocol's own examples, written from
draft-dunglas-mercure-07: publication, topic selectors, private updates, reconnection; and the
ways it is the same hub as `/events` and `/publish`.

A subscriber that must not receive an update is shown one published after it: the next event
it reads is that one (no waiting for something not to happen).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from support.hub_http import open_position, publish, stream
from support.hub_process import HubProcess
from support.mercure_http import HUB, mercure_publish, mercure_stream

from ssehub.auth import mint_token
from ssehub.mercure import discovery_link

SECRET = "a-secret-of-at-least-32-bytes-for-hs256!"
BOOK = "https://example.com/books/1"
ORIGIN = "https://app.example"


def token(*, publish: tuple[str, ...] = (), subscribe: tuple[str, ...] = ()) -> str:
    return mint_token(SECRET, publish=publish, subscribe=subscribe, ttl=600, now=time.time())


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def hub_url(start_api: Callable[..., str]) -> str:
    return start_api()


@pytest.fixture
def secured(start_api: Callable[..., str]) -> str:
    """A hub with a key: publishers need a token; anonymous subscribers get public updates."""
    return start_api("--jwt-key", SECRET, "--allow-anonymous", "--cors-origin", ORIGIN)


# -- publication --------------------------------------------------------------------------------


def test_publish_answers_the_id_as_text_and_subscribers_get_the_update(hub_url: str) -> None:
    with mercure_stream(hub_url, BOOK) as s:
        open_position(s)
        reply = mercure_publish(
            hub_url,
            [("topic", BOOK), ("data", '{"title": "Dune"}'), ("type", "book"), ("retry", "5000")],
        )
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        event = s.next()
    assert (event.id, event.event, event.data) == (reply.text, "book", '{"title": "Dune"}')
    assert s.decoder.retry == 5000


def test_the_first_topic_is_canonical_the_others_alternates(hub_url: str) -> None:
    alternate = "https://example.com/authors/7/books/1"
    with mercure_stream(hub_url, alternate) as s:
        open_position(s)
        reply = mercure_publish(hub_url, [("topic", BOOK), ("topic", alternate), ("data", "x")])
        assert s.next().id == reply.text


def test_a_publisher_id_is_the_events_id_and_a_resume_point(hub_url: str) -> None:
    with mercure_stream(hub_url, BOOK) as s:
        open_position(s)
        reply = mercure_publish(hub_url, [("topic", BOOK), ("data", "v1"), ("id", "urn:uuid:v1")])
        assert reply.text == "urn:uuid:v1"
        assert s.next().id == "urn:uuid:v1"
    later = mercure_publish(hub_url, [("topic", BOOK), ("data", "v2")]).text
    with mercure_stream(hub_url, BOOK, params=[("lastEventID", "urn:uuid:v1")]) as s:
        assert s.response.headers["last-event-id"] == "urn:uuid:v1"
        event = s.next()
    assert (event.id, event.data) == (later, "v2")


def test_a_duplicate_publisher_id_is_409_and_publishes_nothing(hub_url: str) -> None:
    assert mercure_publish(hub_url, [("topic", BOOK), ("id", "urn:1")]).status_code == 200
    with mercure_stream(hub_url, BOOK) as s:
        open_position(s)
        again = mercure_publish(hub_url, [("topic", BOOK), ("data", "dup"), ("id", "urn:1")])
        assert again.status_code == 409
        assert again.json()["field"] == "id" and "urn:1" in again.json()["error"]
        mercure_publish(hub_url, [("topic", BOOK), ("data", "next")])
        assert s.next().data == "next"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ([("data", "no topic")], "topic"),
        ([("topic", BOOK), ("retry", "soon")], "retry"),
        ([("topic", BOOK), ("retry", "-1")], "retry"),
        ([("topic", BOOK), ("id", "a\nb")], "id"),
        ([("topic", BOOK), ("id", "a\rb")], "id"),
        ([("topic", BOOK), ("id", "a\0b")], "id"),
        ([("topic", BOOK), ("id", "#fragment")], "id"),
        ([("topic", BOOK), ("id", "earliest")], "id"),
        ([("topic", BOOK), ("type", "a\nb")], "type"),
        ([("topic", BOOK), ("type", "")], "type"),
        ([("topic", BOOK), ("colour", "red")], "colour"),
        ([("topic", "two words")], "topic"),
    ],
)
def test_bad_updates_are_400_and_publish_nothing(
    hub_url: str, fields: list[tuple[str, str]], field: str
) -> None:
    with mercure_stream(hub_url, BOOK) as s:
        open_position(s)
        reply = mercure_publish(hub_url, fields)
        assert reply.status_code == 400, reply.text
        assert reply.json()["field"] == field
        mercure_publish(hub_url, [("topic", BOOK), ("data", "after")])
        assert s.next().data == "after"


def test_an_update_is_a_form(hub_url: str) -> None:
    reply = httpx.post(f"{hub_url}{HUB}", json={"topic": BOOK})
    assert reply.status_code == 415 and "x-www-form-urlencoded" in reply.json()["error"]


# -- subscription: topic selectors --------------------------------------------------------------


def test_topic_selectors_exact_template_and_star(hub_url: str) -> None:
    with (
        mercure_stream(hub_url, "https://example.com/books/{id}") as books,
        mercure_stream(hub_url, "*") as everything,
        mercure_stream(hub_url, "https://example.com/authors/1") as author,
    ):
        for s in (books, everything, author):
            open_position(s)
        mercure_publish(hub_url, [("topic", "https://example.com/reviews/9"), ("data", "r")])
        mercure_publish(hub_url, [("topic", BOOK), ("data", "b")])
        mercure_publish(hub_url, [("topic", "https://example.com/authors/1"), ("data", "a")])
        assert books.next().data == "b"
        assert [everything.next().data for _ in range(3)] == ["r", "b", "a"]
        assert author.next().data == "a"


def test_an_update_matching_several_selectors_comes_once(hub_url: str) -> None:
    with mercure_stream(hub_url, "https://example.com/books/{id}", "*", BOOK) as s:
        open_position(s)
        mercure_publish(hub_url, [("topic", BOOK), ("topic", "alt"), ("data", "once")])
        mercure_publish(hub_url, [("topic", "other"), ("data", "next")])
        assert [s.next().data, s.next().data] == ["once", "next"]


def test_match_is_the_1_0_name_of_topic(hub_url: str) -> None:
    with mercure_stream(hub_url, params=[("match", "https://example.com/books/{id}")]) as s:
        open_position(s)
        mercure_publish(hub_url, [("topic", BOOK), ("data", "matched")])
        assert s.next().data == "matched"


def test_a_subscription_needs_a_topic(hub_url: str) -> None:
    reply = httpx.get(f"{hub_url}{HUB}")
    assert reply.status_code == 400 and "topic" in reply.json()["error"]


# -- reconnection -------------------------------------------------------------------------------


def test_resume_by_header_query_or_legacy_query_header_wins(hub_url: str) -> None:
    first = mercure_publish(hub_url, [("topic", BOOK), ("data", "1")]).text
    second = mercure_publish(hub_url, [("topic", BOOK), ("data", "2")]).text
    for params in (
        [("lastEventID", first)],
        [("Last-Event-ID", first)],
        [("last_event_id", first)],
    ):
        with mercure_stream(hub_url, BOOK, params=params) as s:
            assert s.response.headers["last-event-id"] == first
            assert s.next().id == second
    header = {"Last-Event-ID": second}
    with mercure_stream(hub_url, BOOK, headers=header, params=[("lastEventID", first)]) as s:
        assert s.response.headers["last-event-id"] == second
        mercure_publish(hub_url, [("topic", BOOK), ("data", "3")])
        assert s.next().data == "3"


def test_resume_with_a_template_selector(hub_url: str) -> None:
    start = mercure_publish(hub_url, [("topic", "https://example.com/x"), ("data", "0")]).text
    mercure_publish(hub_url, [("topic", "https://example.com/books/2"), ("data", "book")])
    mercure_publish(hub_url, [("topic", "https://example.com/x"), ("data", "x")])
    with mercure_stream(
        hub_url, "https://example.com/books/{id}", params=[("lastEventID", start)]
    ) as s:
        assert s.response.headers["last-event-id"] == start
        assert s.next().data == "book"


def test_earliest_asks_for_all_history(hub_url: str) -> None:
    ids = [mercure_publish(hub_url, [("topic", BOOK), ("data", str(n))]).text for n in range(3)]
    with mercure_stream(hub_url, BOOK, params=[("lastEventID", "earliest")]) as s:
        assert s.response.headers["last-event-id"] == "earliest"
        assert [s.next().id for _ in range(3)] == ids


def test_an_unknown_id_answers_the_last_id_the_hub_knows(hub_url: str) -> None:
    latest = mercure_publish(hub_url, [("topic", BOOK), ("data", "known")]).text
    with mercure_stream(hub_url, BOOK, headers={"Last-Event-ID": "urn:never"}) as s:
        assert s.response.headers["last-event-id"] == latest
        reset = s.next()  # ssehub's reset: EventSource's onmessage never sees it
        assert (reset.event, reset.id) == ("reset", latest)
        mercure_publish(hub_url, [("topic", BOOK), ("data", "live")])
        assert s.next().data == "live"


# -- private updates and authorization -----------------------------------------------------------


def test_private_updates_reach_only_subscribers_whose_claims_match(secured: str) -> None:
    publisher = bearer(token(publish=("*",)))
    reader = bearer(token(subscribe=("https://example.com/users/1/{+rest}",)))
    other = bearer(token(subscribe=("https://example.com/users/2/{+rest}",)))
    topic = "https://example.com/users/1/orders"
    with (
        mercure_stream(secured, "https://example.com/users/{id}/orders", headers=reader) as mine,
        mercure_stream(secured, topic, headers=other) as theirs,
        mercure_stream(secured, "*") as anonymous,
    ):
        for s in (mine, theirs, anonymous):
            open_position(s)
        private = mercure_publish(
            secured, [("topic", topic), ("data", "secret"), ("private", "on")], publisher
        )
        assert private.status_code == 200
        mercure_publish(secured, [("topic", topic), ("data", "public")], publisher)
        assert [mine.next().data, mine.next().data] == ["secret", "public"]
        assert theirs.next().data == "public"
        assert anonymous.next().data == "public"
    start_params = [("lastEventID", "earliest")]
    with mercure_stream(secured, topic, headers=other, params=start_params) as replayed:
        assert replayed.next().data == "public"  # on replay too
    with mercure_stream(secured, topic, headers=reader, params=start_params) as replayed:
        assert [replayed.next().data, replayed.next().data] == ["secret", "public"]
    with mercure_stream(secured, "*", headers=other, params=start_params) as everything:
        assert everything.next().data == "public"  # a selector's replay filters alike


def test_a_private_update_matching_the_query_but_not_the_claims(secured: str) -> None:
    # The query selects it, the claims select another of its topics: delivered ("one of").
    publisher = bearer(token(publish=("*",)))
    reader = bearer(token(subscribe=("alternate",)))
    with mercure_stream(secured, BOOK, headers=reader) as s:
        open_position(s)
        fields = [("topic", BOOK), ("topic", "alternate"), ("data", "both"), ("private", "on")]
        mercure_publish(secured, fields, publisher)
        assert s.next().data == "both"


def test_publishing_needs_a_token_granting_every_topic(secured: str) -> None:
    missing = mercure_publish(secured, [("topic", BOOK)])
    assert missing.status_code == 401 and "www-authenticate" in missing.headers
    narrow = bearer(token(publish=("https://example.com/books/{id}",)))
    refused = mercure_publish(secured, [("topic", BOOK), ("topic", "elsewhere")], narrow)
    assert refused.status_code == 403
    assert mercure_publish(secured, [("topic", BOOK)], narrow).status_code == 200


def test_a_publish_by_cookie_needs_an_allowed_origin(secured: str) -> None:
    cookie = {"Cookie": f"mercureAuthorization={token(publish=('*',))}"}
    assert mercure_publish(secured, [("topic", BOOK)], cookie).status_code == 403
    other = {**cookie, "Origin": "https://evil.example"}
    assert mercure_publish(secured, [("topic", BOOK)], other).status_code == 403
    allowed = mercure_publish(secured, [("topic", BOOK)], {**cookie, "Origin": ORIGIN})
    assert allowed.status_code == 200


def test_a_token_in_the_query_or_cookie_subscribes(secured: str) -> None:
    reader = token(subscribe=("*",))
    publisher = bearer(token(publish=("*",)))
    with mercure_stream(secured, BOOK, params=[("authorization", reader)]) as s:
        open_position(s)
        mercure_publish(secured, [("topic", BOOK), ("data", "p"), ("private", "on")], publisher)
        assert s.next().data == "p"
    with mercure_stream(secured, BOOK, headers={"Cookie": f"mercureAuthorization={reader}"}) as s:
        open_position(s)
        mercure_publish(secured, [("topic", BOOK), ("data", "c"), ("private", "on")], publisher)
        assert s.next().data == "c"


# -- the same hub -------------------------------------------------------------------------------


def test_publish_and_events_meet_mercure_both_ways(hub_url: str) -> None:
    with mercure_stream(hub_url, BOOK) as mercure, stream(hub_url, BOOK) as events:
        open_position(mercure)
        open_position(events)
        native = publish(hub_url, topic=BOOK, data="from /publish").json()["ids"][0]
        spoken = mercure_publish(hub_url, [("topic", BOOK), ("data", "from mercure")]).text
        assert [(e.id, e.data) for e in (mercure.next(), mercure.next())] == [
            (native, "from /publish"),
            (spoken, "from mercure"),
        ]
        assert [events.next().id, events.next().id] == [native, spoken]


def test_cors_preflight_and_discovery(secured: str) -> None:
    preflight = httpx.options(
        f"{secured}{HUB}",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id, cache-control",
        },
    )
    assert preflight.status_code == 204
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "last-event-id", "cache-control"} <= set(allowed.split(", "))
    with mercure_stream(secured, BOOK, headers={"Origin": ORIGIN}) as s:
        assert s.response.headers["access-control-allow-origin"] == ORIGIN
        assert s.response.headers["link"] == '</.well-known/mercure>; rel="mercure"'
    assert httpx.delete(f"{secured}{HUB}").status_code == 405
    head = httpx.head(f"{secured}{HUB}", params={"topic": BOOK})
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event")


def test_the_hubs_own_pages_say_where_the_hub_is(start_hub: Callable[..., HubProcess]) -> None:
    page = httpx.get(f"{start_hub().url}/")  # the console (ssehub serve's default)
    assert page.status_code == 200 and page.headers["link"] == discovery_link()


def test_discovery_link() -> None:
    assert discovery_link("https://hub.example/.well-known/mercure") == (
        '<https://hub.example/.well-known/mercure>; rel="mercure"'
    )
    assert discovery_link() == '</.well-known/mercure>; rel="mercure"'
    with pytest.raises(ValueError, match="Link header"):
        discovery_link('https://x/"><evil')
