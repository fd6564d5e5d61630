"""The hub's HTTP API, the same through every entry point: `ssehub serve` (the native server) and
`hub.asgi_app()` under uvicorn, each a real process over real HTTP on loopback.

Every behaviour the README promises of `/events`, `/publish`, `/healthz`, `/metrics` and CORS is
checked on both, bad input included. What only the native server does (pipelining, keep-alive,
the C fast path, connection limits) is in test_server.py.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest
from support.hub_http import metric, open_position, publish, stream

from ssehub.wire import Decoder, Event

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_url(start_api: Callable[..., str]) -> str:
    return start_api()


# -- the contract -------------------------------------------------------------------------------


def test_event_stream_headers_and_opening(hub_url: str) -> None:
    with httpx.stream("GET", f"{hub_url}/events?topic=t") as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        opening = next(response.iter_raw())
    assert opening.startswith(b": ssehub\nretry: 3000\n\n")


def test_publish_reaches_subscribers_with_id_and_type(hub_url: str) -> None:
    with stream(hub_url, "orders") as s:
        open_position(s)
        reply = publish(hub_url, topic="orders", data={"n": 1}, event="created")
        assert reply.status_code == 200
        [event_id] = reply.json()["ids"]
        event = s.next()
    assert (event.event, event.data, event.id) == ("created", '{"n":1}', event_id)


def test_form_publish_like_curl(hub_url: str) -> None:
    with stream(hub_url, "orders") as s:
        open_position(s)
        reply = httpx.post(f"{hub_url}/publish", data={"topic": "orders", "data": "hello"})
        assert reply.status_code == 200, reply.text
        assert s.next().data == "hello"


def test_many_topics_on_one_connection(hub_url: str) -> None:
    with stream(hub_url, "a", "b") as s:
        open_position(s)
        publish(hub_url, topic="a", data="1")
        publish(hub_url, topic="c", data="not mine")
        publish(hub_url, topic=["a", "b"], data="2: once")
        publish(hub_url, topic="b", data="3")
        assert [e.data for e in s.take(3)] == ["1", "2: once", "3"]


def test_batch_publish_returns_ids_in_order(hub_url: str) -> None:
    with stream(hub_url, "t") as s:
        open_position(s)
        items = [{"topic": "t", "data": str(i)} for i in range(5)]
        ids = httpx.post(f"{hub_url}/publish", json=items).json()["ids"]
        events = s.take(5)
    assert [e.data for e in events] == ["0", "1", "2", "3", "4"]
    assert [e.id for e in events] == ids


def test_healthz_and_metrics(hub_url: str) -> None:
    assert httpx.get(f"{hub_url}/healthz").json() == {"status": "ok"}
    publish(hub_url, topic="t", data="x")
    assert metric(hub_url, "events_published_total") == 1
    assert metric(hub_url, "topics") == 1
    assert metric(hub_url, "history_events") == 1
    assert "topic=" not in httpx.get(f"{hub_url}/metrics").text  # no label per topic


def test_heartbeats_keep_the_stream_alive(start_api: Callable[..., str]) -> None:
    url = start_api("--heartbeat", "0.05")
    with httpx.stream("GET", f"{url}/events?topic=t") as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if b": heartbeat\n\n" in seen:
                break
    assert b": heartbeat\n\n" in seen


# -- resume -------------------------------------------------------------------------------------


async def test_resume_has_no_gap_and_no_duplicate_while_publishing_continues(
    hub_url: str,
) -> None:
    total = 400
    rng = random.Random(7)
    received: list[str] = []
    last_id: str | None = None
    async with httpx.AsyncClient(base_url=hub_url, timeout=10) as client:

        async def publisher() -> None:
            for i in range(total):
                reply = await client.post("/publish", json={"topic": "t", "data": str(i)})
                assert reply.status_code == 200

        publishing = asyncio.ensure_future(publisher())
        reconnects = 0
        while len(received) < total:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            decoder = Decoder(last_id or "")
            budget = rng.randint(1, 25)  # drop the connection after this many events
            async with client.stream("GET", "/events?topic=t", headers=headers) as response:
                async for chunk in response.aiter_raw():
                    for event in decoder.feed(chunk):
                        assert event.event != "reset", event.data
                        received.append(event.data)
                        budget -= 1
                    last_id = decoder.last_event_id
                    if budget <= 0 or len(received) == total:
                        break
            reconnects += 1
        await publishing
    assert received == [str(i) for i in range(total)]
    assert reconnects > 10


def test_unknown_last_event_id_gets_a_reset_then_live_events(hub_url: str) -> None:
    publish(hub_url, topic="t", data="old")
    with stream(hub_url, "t", last_event_id="999999999999999999") as s:
        reset = s.next()
        publish(hub_url, topic="t", data="live")
        live = s.next()
    assert reset.event == "reset"
    assert json.loads(reset.data)["last_event_id"] == "999999999999999999"
    assert live.data == "live"
    assert metric(hub_url, "resets_total") == 1


def test_last_event_id_older_than_history_gets_a_reset(
    start_api: Callable[..., str],
) -> None:
    url = start_api("--history", "3")
    first = publish(url, topic="t", data="0").json()["ids"][0]
    for i in range(1, 6):
        publish(url, topic="t", data=str(i))
    with stream(url, "t", last_event_id=first) as s:
        reset = s.next()
    assert reset.event == "reset"
    assert "no longer retained" in json.loads(reset.data)["reason"]


def test_last_event_id_query_parameter_for_polyfills(hub_url: str) -> None:
    ids = [publish(hub_url, topic="t", data=str(i)).json()["ids"][0] for i in range(3)]
    with httpx.stream("GET", f"{hub_url}/events?topic=t&last_event_id={ids[0]}") as response:
        decoder = Decoder()
        events: list[Event] = []
        for chunk in response.iter_raw():
            events += decoder.feed(chunk)
            if len(events) == 2:
                break
    assert [e.data for e in events] == ["1", "2"]


def test_reconnect_before_any_event_still_resumes(hub_url: str) -> None:
    with stream(hub_url, "t") as s:
        position = open_position(s)
    publish(hub_url, topic="t", data="while away")
    with stream(hub_url, "t", last_event_id=position) as s:
        assert s.next().data == "while away"


# -- bad input ----------------------------------------------------------------------------------

BAD_PUBLISHES: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("missing topic", {"content-type": "application/json"}, b'{"data": "x"}', 400, "topic"),
    ("malformed JSON", {"content-type": "application/json"}, b'{"topic": ', 400, "malformed JSON"),
    ("non-UTF-8", {"content-type": "application/json"}, b'{"topic": "\xff"}', 400, "UTF-8"),
    ("event injection LF", {}, b"topic=t&event=a%0Adata%3A+x", 400, "event"),
    ("event injection CR", {}, b"topic=t&event=a%0Ddata%3A+x", 400, "event"),
    ("topic with newline", {}, b"topic=t%0Aevent%3A+x&data=x", 400, "topic"),
    ("topic with space", {}, b"topic=a+b&data=x", 400, "topic"),
    ("negative retry", {}, b"topic=t&retry=-1", 400, "retry"),
    ("retry not a number", {}, b"topic=t&retry=1%0Adata%3A+x", 400, "retry"),
    (
        "id set by publisher",
        {"content-type": "application/json"},
        b'{"topic":"t","id":"1"}',
        400,
        "id",
    ),
    ("bad percent-encoding", {}, b"topic=t&data=%ff", 400, "form"),
    ("topic not a string", {"content-type": "application/json"}, b'{"topic": 5}', 400, "topic"),
    ("empty batch", {"content-type": "application/json"}, b"[]", 400, "non-empty"),
    ("unsupported type", {"content-type": "text/plain"}, b"hello", 415, "content type"),
    (
        "batch with one bad item",
        {"content-type": "application/json"},
        b'[{"topic":"t","data":"ok"},{"topic":"t","event":"a\\nb"}]',
        400,
        "item 1",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [case[1:] for case in BAD_PUBLISHES],
    ids=[case[0] for case in BAD_PUBLISHES],
)
def test_bad_publish_gets_a_json_error_and_publishes_nothing(
    hub_url: str, headers: dict[str, str], body: bytes, status: int, says: str
) -> None:
    reply = httpx.post(f"{hub_url}/publish", content=body, headers=headers)
    assert reply.status_code == status
    assert says in reply.json()["error"]
    assert metric(hub_url, "events_published_total") == 0
    assert publish(hub_url, topic="t", data="still serving").status_code == 200


def test_data_cannot_inject_fields(hub_url: str) -> None:
    hostile = "x\n\nevent: admin\ndata: pwned\rid: 1\r\n"
    with stream(hub_url, "t") as s:
        open_position(s)
        publish(hub_url, topic="t", data=hostile)
        publish(hub_url, topic="t", data="next")
        first, second = s.take(2)
    assert first.event == "message"
    assert first.data == "x\n\nevent: admin\ndata: pwned\nid: 1\n"
    assert second.data == "next"


def test_body_over_the_limit_is_refused(start_api: Callable[..., str]) -> None:
    url = start_api("--max-body-bytes", "1000")
    reply = httpx.post(f"{url}/publish", data={"topic": "t", "data": "x" * 2000})
    assert reply.status_code == 413 and "limit" in reply.json()["error"]
    assert metric(url, "events_published_total") == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/events", 400),
        ("GET", "/events?topic=a%20b", 400),
        ("GET", "/nope", 404),
        ("PUT", "/publish", 405),
    ],
)
def test_bad_routes_get_json_errors(hub_url: str, method: str, path: str, status: int) -> None:
    reply = httpx.request(method, f"{hub_url}{path}")
    assert reply.status_code == status
    assert reply.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/publish", "POST"),
        ("POST", "/events", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
    ],
)
def test_a_wrong_method_gets_405_with_allow(
    hub_url: str, method: str, path: str, allow: str
) -> None:
    reply = httpx.request(method, f"{hub_url}{path}")
    assert reply.status_code == 405
    assert reply.headers["allow"] == allow
    assert reply.json() == {"error": f"method {method} not allowed on {path}"}


async def test_a_flood_of_bad_requests_does_not_stop_good_ones(hub_url: str) -> None:
    async with httpx.AsyncClient(base_url=hub_url, timeout=20) as client:

        async def bad(i: int) -> int:
            body = b"{" if i % 2 else b'{"topic": "t", "event": "a\\nb"}'
            headers = {"content-type": "application/json"}
            return (await client.post("/publish", content=body, headers=headers)).status_code

        async def good(i: int) -> int:
            return (await client.post("/publish", data={"topic": "t", "data": str(i)})).status_code

        results = await asyncio.gather(*(bad(i) for i in range(300)), *(good(i) for i in range(50)))
    assert results[:300] == [400] * 300
    assert results[300:] == [200] * 50
    assert metric(hub_url, "events_published_total") == 50


def test_cors(start_api: Callable[..., str]) -> None:
    url = start_api("--cors-origin", "https://app.example")
    allowed = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    preflight = httpx.options(f"{url}/events", headers=allowed)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "Last-Event-ID" in preflight.headers["access-control-allow-headers"]
    denied = httpx.options(f"{url}/events", headers={**allowed, "Origin": "https://evil.example"})
    assert denied.status_code == 403 and "not allowed" in denied.json()["error"]
    with httpx.stream(
        "GET", f"{url}/events?topic=t", headers={"Origin": "https://app.example"}
    ) as r:
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    reply = httpx.get(f"{url}/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in reply.headers
