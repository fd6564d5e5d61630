"""`ssehub.wsgi` in Flask and Django apps served by werkzeug's threaded server over loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, request
from test_asgi_support import WAIT, broken_off, events, http, serve_wsgi

from ssehub.hub import Hub
from ssehub.wire import Event
from ssehub.wsgi import (
    HEADERS,
    EventStream,
    HubThread,
    event_stream,
    publish_sync,
    subscribe_sync,
)


@dataclass
class Probe:
    closed: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def watch(self, items: Iterable[object]) -> Iterator[object]:
        """`items`, noting when the stream closes them (their `finally` runs)."""
        try:
            yield from items
        finally:
            self.closed.set()


def make_flask_app(hub: Hub, probe: Probe) -> Flask:
    app = Flask(__name__)

    def respond(items: Iterable[object], **options: Any) -> Response:
        return Response(event_stream(probe.watch(items), **options), headers=HEADERS)

    @app.get("/clock")
    def clock() -> Response:
        count = int(request.args.get("count", "3"))

        def ticks() -> Iterator[Event]:
            for n in range(count):
                time.sleep(0.001)  # a blocking source, as WSGI sources are
                yield Event(data=f"tick {n}", id=str(n))
            yield Event(event="end", data="bye")

        return respond(ticks(), retry=1000)

    @app.get("/quiet")
    def quiet() -> Response:
        def blocks() -> Iterator[str]:
            yield "first"
            probe.gate.wait(WAIT)  # blocks the feeder thread, not the response
            yield "second"

        return respond(blocks(), heartbeat=0.05)

    @app.get("/broken")
    def broken() -> Response:
        def fails() -> Iterator[object]:
            yield {"ok": True}
            raise RuntimeError("the source broke")

        return respond(fails())

    @app.get("/hub/events")
    def hub_events() -> Response:
        """Relays the in-process hub's topics, or those of the hub server at `?remote=URL`."""
        topics = request.args.getlist("topic")
        resume = request.headers.get("Last-Event-ID")
        remote = request.args.get("remote")

        def relay() -> Iterator[Event]:
            with subscribe_sync(remote or hub, topics, resume) as subscription:
                yield from subscription

        return respond(relay(), heartbeat=0.05)

    @app.post("/hub/publish")
    def hub_publish() -> dict[str, str]:
        form = request.form
        return {"id": publish_sync(hub, form["topic"], form["data"], form.get("event", "message"))}

    return app


@pytest.fixture
def hub_thread() -> Iterator[HubThread]:
    with HubThread(Hub()) as running:
        yield running


@pytest.fixture
def hub(hub_thread: HubThread) -> Hub:
    return hub_thread.hub


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def url(hub: Hub, probe: Probe) -> Iterator[str]:
    with serve_wsgi(make_flask_app(hub, probe)) as url:
        yield url
    probe.gate.set()


# -- event_stream in Flask ----------------------------------------------------------------------


def test_flask_stream_with_headers_retry_and_an_end(url: str, probe: Probe) -> None:
    with events(f"{url}/clock?count=3") as stream:
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        received = stream.rest()
    assert [(e.event, e.data, e.id) for e in received] == [
        ("message", "tick 0", "0"),
        ("message", "tick 1", "1"),
        ("message", "tick 2", "2"),
        ("end", "bye", "2"),
    ]
    assert stream.decoder.retry == 1000
    assert probe.closed.wait(WAIT)


def test_heartbeats_while_the_source_blocks(url: str, probe: Probe) -> None:
    with events(f"{url}/quiet") as stream:
        assert stream.next().data == "first"
        stream.read_until(b": heartbeat\n\n")
        probe.gate.set()
        assert stream.next().data == "second"
        assert stream.rest() == []
    assert probe.closed.wait(WAIT)


def test_a_failing_source_ends_the_body_unfinished(url: str) -> None:
    # No final chunk: the client can tell a broken stream from a finished one.
    assert [e.data for e in broken_off(f"{url}/broken")] == ['{"ok":true}']


# -- the hub from Flask -------------------------------------------------------------------------


def test_flask_view_streams_hub_topics_and_publishes(url: str) -> None:
    with events(f"{url}/hub/events", params={"topic": ["a", "b"]}) as stream:
        # The stream writes nothing until an event or a heartbeat: wait for the heartbeat, by
        # which time the view has subscribed.
        stream.read_until(b": heartbeat\n\n")
        http.post(f"{url}/hub/publish", data={"topic": "a", "data": "1"})
        http.post(f"{url}/hub/publish", data={"topic": "c", "data": "not mine"})
        reply = http.post(f"{url}/hub/publish", data={"topic": "b", "data": "2", "event": "x"})
        received = stream.take(2)
    assert [(e.event, e.data) for e in received] == [("message", "1"), ("x", "2")]
    assert received[1].id == reply.json()["id"]


def test_flask_view_resumes_from_last_event_id(hub: Hub, url: str) -> None:
    ids = [publish_sync(hub, "t", str(i)) for i in range(3)]
    with events(f"{url}/hub/events?topic=t", last_event_id=ids[0]) as stream:
        assert [e.data for e in stream.take(2)] == ["1", "2"]


def subscribers(hub_thread: HubThread) -> int:
    """The hub's subscriber count, read on its own loop (whose dicts it mutates)."""

    async def count() -> int:
        return hub_thread.hub.subscriber_count()

    return asyncio.run_coroutine_threadsafe(count(), hub_thread.loop).result(WAIT)


def test_client_gone_closes_the_hub_subscription_at_once(
    hub_thread: HubThread, url: str, probe: Probe
) -> None:
    with events(f"{url}/hub/events?topic=quiet") as stream:
        stream.read_until(b": heartbeat\n\n")
        assert subscribers(hub_thread) == 1
    # No event will ever come on this topic: the relay generator is blocked in the subscription
    # until a failed heartbeat closes the stream, which closes the subscription it opened.
    assert probe.closed.wait(WAIT)
    assert subscribers(hub_thread) == 0


def test_client_gone_closes_a_remote_hub_subscription_at_once(
    hub_url: str, url: str, probe: Probe
) -> None:
    with events(f"{url}/hub/events?topic=quiet&remote={hub_url}") as stream:
        stream.read_until(b": heartbeat\n\n")
    # The relay is blocked reading the hub server's stream: closing the EventSource unblocks it.
    assert probe.closed.wait(WAIT)


def test_flask_view_relays_a_hub_server(hub_url: str, url: str) -> None:
    first = publish_sync(hub_url, "t", "first")
    with events(f"{url}/hub/events?topic=t&remote={hub_url}", last_event_id=first) as stream:
        second = publish_sync(hub_url, "t", "second")
        event = stream.next()
    assert (event.data, event.id) == ("second", second)


# -- subscribe_sync and publish_sync without a web app ------------------------------------------


def test_subscribe_sync_gets_replay_reset_and_live_events(hub: Hub) -> None:
    first = hub.publish_sync("t", "0")
    publish_sync(hub, "t", "1")
    with hub.subscribe_sync("t", last_event_id=first) as subscription:
        assert subscription.get(WAIT) == Event(data="1", id=str(int(first) + 1))
        live = hub.publish_sync(["t", "u"], "live", event="news")
        assert subscription.get(WAIT) == Event(data="live", event="news", id=live)
        assert subscription.last_event_id == live
    with subscribe_sync(hub, "t", last_event_id="bogus") as subscription:
        reset = subscription.get(WAIT)
    assert reset is not None and reset.event == "reset"


def test_subscribe_sync_ends_when_closed_from_another_thread(hub: Hub) -> None:
    subscription = subscribe_sync(hub, "t")
    received: list[Event] = []
    reader = threading.Thread(target=lambda: received.extend(subscription))
    reader.start()
    publish_sync(hub, "t", "one")
    subscription.close()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert [e.data for e in received] in ([], ["one"])


def test_invalid_input_is_refused_in_the_caller(hub: Hub) -> None:
    with pytest.raises(ValueError, match="topic 'has space' is invalid"):
        subscribe_sync(hub, "has space")
    with pytest.raises(ValueError, match="topic 'has space' is invalid"):
        publish_sync(hub, "has space", "x")
    with pytest.raises(RuntimeError, match="HubThread"):
        subscribe_sync(Hub(), "t")


def test_publish_sync_to_a_hub_server_over_http(hub_url: str) -> None:
    with events(f"{hub_url}/events?topic=t") as stream:
        stream.until_position()
        event_id = publish_sync(hub_url, "t", "over http", event="remote")
        event = stream.next()
    assert (event.event, event.data, event.id) == ("remote", "over http", event_id)
    with pytest.raises(ValueError, match="topic 'has space' is invalid"):
        publish_sync(hub_url, "has space", "x")


# -- EventStream as the server drives it --------------------------------------------------------


def test_everything_waiting_goes_out_in_one_write() -> None:
    body = EventStream(["a", "b", "c"], heartbeat=None)
    body._feeder = threading.Thread(target=body._feed)
    body._feeder.start()
    body._feeder.join(WAIT)  # the feeder has queued all three and the end
    assert list(body) == [b"data: a\n\ndata: b\n\ndata: c\n\n"]


def test_a_source_that_is_not_iterable_fails_the_body() -> None:
    with pytest.raises(TypeError):
        list(event_stream(42, heartbeat=None))  # type: ignore[arg-type]


def test_close_stops_the_feeder_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[str]:
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    body = event_stream(endless())
    assert next(body).startswith(b"data: x\n\n")
    body.close()
    assert closed.wait(WAIT)


# -- Django -------------------------------------------------------------------------------------


def test_django_streaming_http_response() -> None:
    import django
    from django.conf import settings
    from django.urls import path

    def clock(request: object) -> object:
        from django.http import StreamingHttpResponse

        return StreamingHttpResponse(event_stream(str(n) for n in range(2)), headers=HEADERS)

    assert not settings.configured

    class Urls:  # a urlconf needs only `urlpatterns`, and to be hashable
        urlpatterns = (path("django/clock", clock),)

    settings.configure(ROOT_URLCONF=Urls, ALLOWED_HOSTS=["127.0.0.1"], SECRET_KEY="test")
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    with serve_wsgi(WSGIHandler()) as url, events(f"{url}/django/clock") as stream:
        received = stream.rest()
        assert stream.response.headers["cache-control"] == "no-cache"
    assert [(e.event, e.data) for e in received] == [("message", "0"), ("message", "1")]
