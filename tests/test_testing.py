"""`ssehub.testing`: endless streams of ASGI apps read in-process, and the event assertion.

Each kind of app the module promises to drive: the hub's `asgi_app()`, `ssehub.asgi`'s
`EventSourceResponse`, sse-starlette's, and FastAPI's `StreamingResponse`. Every endless source
records when its `finally` ran, so each test shows the app was ended, not abandoned.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import pytest
import sse_starlette
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ssehub import Event, Hub, encode
from ssehub.asgi import EventSourceResponse
from ssehub.testing import assert_events, decode, read_events, read_events_sync, stream

pytestmark = pytest.mark.anyio


def endless_app(closed: list[str]) -> FastAPI:
    """Three endless routes, one per kind of response; each notes in `closed` when it ended."""
    app = FastAPI()

    async def ticks(kind: str) -> AsyncIterator[int]:
        try:
            for n in itertools.count():
                yield n
                await asyncio.sleep(0)
        finally:
            closed.append(kind)

    @app.get("/ssehub")
    async def with_ssehub() -> EventSourceResponse:
        return EventSourceResponse(Event(f"tick {n}", id=str(n)) async for n in ticks("ssehub"))

    @app.get("/sse-starlette")
    async def with_sse_starlette() -> sse_starlette.EventSourceResponse:
        items = ({"data": f"tick {n}", "id": str(n)} async for n in ticks("sse-starlette"))
        return sse_starlette.EventSourceResponse(items)

    @app.get("/streaming")
    async def with_streaming_response() -> StreamingResponse:
        chunks = (encode(Event(f"tick {n}", id=str(n))) async for n in ticks("streaming"))
        return StreamingResponse(chunks, media_type="text/event-stream")

    @app.get("/quiet")
    async def quiet() -> EventSourceResponse:
        async def one_then_nothing() -> AsyncIterator[str]:
            try:
                yield "only"
                await asyncio.Event().wait()
            finally:
                closed.append("quiet")

        return EventSourceResponse(one_then_nothing(), heartbeat=None)

    @app.post("/echo")
    async def echo(request: Request) -> EventSourceResponse:
        words = (await request.json())["words"]
        return EventSourceResponse(iter(words))

    @app.get("/private")
    async def private() -> JSONResponse:
        return JSONResponse({"error": "log in first"}, status_code=401)

    return app


TICKS = [Event("tick 0", id="0"), Event("tick 1", id="1"), Event("tick 2", id="2")]


@pytest.mark.parametrize("route", ["ssehub", "sse-starlette", "streaming"])
async def test_the_first_events_of_an_endless_stream_then_the_source_is_closed(route: str) -> None:
    closed: list[str] = []
    events = await read_events(endless_app(closed), f"/{route}", 3)
    assert_events(events, TICKS)
    assert closed == [route]  # ended before read_events returned, not left running


@pytest.mark.parametrize("route", ["ssehub", "sse-starlette", "streaming"])
def test_from_synchronous_code(route: str) -> None:
    closed: list[str] = []
    assert_events(read_events_sync(endless_app(closed), f"/{route}", 2), TICKS[:2])
    assert closed == [route]


async def test_a_quiet_stream_is_ended_by_the_disconnect() -> None:
    closed: list[str] = []
    async with stream(endless_app(closed), "/quiet") as events:
        assert (await events.next()).data == "only"
        assert events.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert closed == []
    assert closed == ["quiet"]


async def test_waiting_for_more_than_comes_fails_with_what_arrived() -> None:
    closed: list[str] = []
    with pytest.raises(AssertionError, match=r"no 2 event\(s\) within 0.2 s; 1 arrived.*only"):
        async with stream(endless_app(closed), "/quiet", timeout=0.2) as events:
            await events.take(2)
    assert closed == ["quiet"]


async def test_a_body_that_ends_early_fails_at_once() -> None:
    app = endless_app([])
    body = json.dumps({"words": ["a", "b"]}).encode()
    headers = {"content-type": "application/json"}
    with pytest.raises(AssertionError, match=r"the response ended before 3 event\(s\); 2 arrived"):
        await read_events(app, "/echo", 3, method="POST", headers=headers, body=body)
    async with stream(app, "/echo", method="POST", headers=headers, body=body) as events:
        assert_events(await events.rest(), ["a", "b"])
        assert events.ended


async def test_an_answer_that_is_not_a_stream_is_readable() -> None:
    async with stream(endless_app([]), "/private") as response:
        assert response.status == 401
        await response.rest()
        assert json.loads(response.body) == {"error": "log in first"}


async def test_an_app_that_ignores_the_disconnect_is_cancelled_and_reported() -> None:
    cancelled = asyncio.Event()

    async def deaf_app(scope: object, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        try:
            await asyncio.Event().wait()  # never listens for http.disconnect
        finally:
            cancelled.set()

    with pytest.raises(AssertionError, match=r"still running 0\.2 s after http\.disconnect"):
        async with stream(deaf_app, "/", timeout=0.2):
            pass
    assert cancelled.is_set()


async def test_an_exception_in_the_app_is_raised() -> None:
    async def broken_app(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("the app broke")

    with pytest.raises(RuntimeError, match="the app broke"):
        await read_events(broken_app, "/", 1)


# -- the hub ----------------------------------------------------------------------------------


async def test_a_hub_stream_live_and_resumed() -> None:
    async with Hub() as hub:
        app = hub.asgi_app()
        async with stream(app, "/events?topic=t&topic=u") as events:
            await events.position()
            first = await hub.publish("t", "one")
            await hub.publish("elsewhere", "not mine")
            await hub.publish(["t", "u"], "two", event="both")
            assert_events(await events.take(2), [Event("one", id=first), Event("two", "both")])
            assert app.traffic.open_streams == 1
        assert app.traffic.open_streams == 0  # the disconnect ended the hub's stream
        resumed = await read_events(app, "/events?topic=t", 1, last_event_id=first)
        assert_events(resumed, [Event("two", "both")])


async def test_the_hub_refusal_is_a_json_answer() -> None:
    async with Hub() as hub, stream(hub.asgi_app(), "/events") as response:
        assert response.status == 400
        await response.rest()
        assert "missing query parameter 'topic'" in json.loads(response.body)["error"]


# -- assert_events ------------------------------------------------------------------------------


def test_assert_events_takes_bodies_text_or_events() -> None:
    body = b"retry: 10\n\nid: 1\ndata: a\n\nevent: x\ndata: b\ndata: c\n\ndata: incomplete"
    expected = [Event("a", id="1"), Event("b\nc", "x")]
    assert_events(body, expected)
    assert_events(body.decode(), expected)
    assert_events(decode(body), ["a", Event("b\nc", "x", id="1")])  # the id in effect


def test_assert_events_shows_a_readable_diff() -> None:
    with pytest.raises(AssertionError) as failure:
        assert_events(b"data: a\n\ndata: B\n\n", ["a", "b", "c"])
    assert str(failure.value).splitlines() == [
        "events differ (- expected, + actual; 3 expected, 2 got):",
        "  event='message' data='a'",
        "- event='message' data='b'",
        "?                       ^",
        "+ event='message' data='B'",
        "?                       ^",
        "- event='message' data='c'",
    ]


def test_assert_events_compares_ids_only_where_expected() -> None:
    assert_events(b"id: 7\ndata: a\n\n", ["a"])
    with pytest.raises(AssertionError, match=r"- event='message' data='a' id='8'"):
        assert_events(b"id: 7\ndata: a\n\n", [Event("a", id="8")])
    with pytest.raises(AssertionError, match="event='update'"):
        assert_events(b"id: 7\ndata: a\n\n", [Event("a", "update")])
