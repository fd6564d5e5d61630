"""ssehub.js in Chromium: the event-stream parser, EventStream (fetch transport), the native
EventSource path resuming after a real drop, and one connection shared by many tabs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from support.tcp_proxy import CuttableProxy

from .conftest import RETRY_MS, DemoHub, Pages, screenshot

# (name, chunks fed in order, expected events, expected final lastEventId, expected retry)
# Each case runs fed as text and as UTF-8 bytes; arbitrary splits are tested separately.
PARSER_CASES: list[tuple[str, list[str], list[dict[str, Any]], str, int | None]] = [
    (
        "LF, CRLF and CR all end lines",
        ["data: a\r\ndata: b\rdata: c\n\n"],
        [{"type": "message", "data": "a\nb\nc", "lastEventId": ""}],
        "",
        None,
    ),
    (
        "a CR at the end of one chunk and an LF at the start of the next are one line end",
        ["data: a\r", "\n", "\r", "\ndata: b\r", "\r"],
        [
            {"type": "message", "data": "a", "lastEventId": ""},
            {"type": "message", "data": "b", "lastEventId": ""},
        ],
        "",
        None,
    ),
    (
        "one leading BOM is skipped, a second one is part of the field name",
        ["\ufeffdata: x\n\n\ufeffdata: y\n\n"],
        [{"type": "message", "data": "x", "lastEventId": ""}],
        "",
        None,
    ),
    (
        "two BOMs at the start: only the first is skipped",
        ["\ufeff\ufeffdata: x\n\ndata: z\n\n"],
        [{"type": "message", "data": "z", "lastEventId": ""}],
        "",
        None,
    ),
    (
        "comments and unknown fields are ignored",
        [": hello\n:\nfoo: bar\ndata: y\n: in between\n\n"],
        [{"type": "message", "data": "y", "lastEventId": ""}],
        "",
        None,
    ),
    (
        "an id containing NUL is ignored; ids persist; an empty id resets",
        ["id: 1\n\nid: 2\u0000x\ndata: z\n\ndata: w\n\nid\ndata: v\n\n"],
        [
            {"type": "message", "data": "z", "lastEventId": "1"},
            {"type": "message", "data": "w", "lastEventId": "1"},
            {"type": "message", "data": "v", "lastEventId": ""},
        ],
        "",
        None,
    ),
    (
        "the last event id is set at the blank line even with no data",
        ["id: 42\n\n"],
        [],
        "42",
        None,
    ),
    (
        "an id line without its blank line does not count",
        ["id: 7\n\nid: 8\n"],
        [],
        "7",
        None,
    ),
    (
        "retry takes ASCII digits only",
        ["retry: 1500\n\nretry: 15x\n\nretry: -5\n\nretry:\n\nretry: ١٢\n\n"],
        [],
        "",
        1500,
    ),
    (
        "event types; an empty type is 'message'; one space after the colon is removed",
        ["event: custom\ndata:  two spaces\n\nevent\ndata:x\n\n"],
        [
            {"type": "custom", "data": " two spaces", "lastEventId": ""},
            {"type": "message", "data": "x", "lastEventId": ""},
        ],
        "",
        None,
    ),
    (
        "a data line with no value dispatches empty data; no data line dispatches nothing",
        ["data\n\ndata:\ndata:\n\nevent: nothing\n\n"],
        [
            {"type": "message", "data": "", "lastEventId": ""},
            {"type": "message", "data": "\n", "lastEventId": ""},
        ],
        "",
        None,
    ),
    (
        "an incomplete event at the end of the stream is discarded",
        ["data: a\n\ndata: b\n", "data: c"],
        [{"type": "message", "data": "a", "lastEventId": ""}],
        "",
        None,
    ),
    (
        "topic lines belong to one event",
        ["id: 9\ntopic: a\ntopic: b\ndata: x\n\ndata: y\n\n"],
        [
            {"type": "message", "data": "x", "lastEventId": "9", "topics": ["a", "b"]},
            {"type": "message", "data": "y", "lastEventId": "9", "topics": []},
        ],
        "9",
        None,
    ),
]


def _run_parser(page: Page, chunks: list[str], *, as_bytes: bool) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """([chunks, asBytes]) => {
            const events = [];
            let retry = null;
            const parser = new SSEHub.Parser({
                onEvent: (e) => events.push(e),
                onRetry: (ms) => { retry = ms; },
            });
            const encoder = new TextEncoder();
            for (const chunk of chunks) parser.feed(asBytes ? encoder.encode(chunk) : chunk);
            parser.end();
            return {events, retry, lastEventId: parser.lastEventId};
        }""",
        [chunks, as_bytes],
    )
    return result


@pytest.fixture
def client_page(hub: DemoHub, pages: Pages) -> Page:
    """A page of the hub with ssehub.js loaded and nothing connected."""
    page = pages.open(f"{hub.url}/?connect=0")
    page.wait_for_function("() => window.SSEHub && SSEHub.version")
    return page


@pytest.mark.parametrize(("name", "chunks", "events", "last_id", "retry"), PARSER_CASES)
def test_parser_follows_the_whatwg_rules(
    client_page: Page,
    name: str,
    chunks: list[str],
    events: list[dict[str, Any]],
    last_id: str,
    retry: int | None,
) -> None:
    for as_bytes in (False, True):
        result = _run_parser(client_page, chunks, as_bytes=as_bytes)
        got = [
            {k: v for k, v in e.items() if k != "topics" or "topics" in want}
            for e, want in zip(result["events"], events, strict=False)
        ]
        assert got == events, name
        assert len(result["events"]) == len(events), name
        assert result["lastEventId"] == last_id, name
        assert result["retry"] == retry, name


def test_parser_gives_the_same_events_whatever_the_chunking(client_page: Page) -> None:
    stream = (
        "\ufeff: comment\r\nid: 1\r\nevent: greet\r\ndata: 你好 — é\r\n\r\n"
        'data: split\rdata: lines\n\nretry: 700\nid: 2\ntopic: t\ndata: {"a": 1}\n\n'
        "id: 3\r\n\r\ndata: last\r\n\r\n"
    )
    whole = _run_parser(client_page, [stream], as_bytes=True)
    assert [e["data"] for e in whole["events"]] == [
        "你好 — é",
        "split\nlines",
        '{"a": 1}',
        "last",
    ]
    assert whole["retry"] == 700
    # One byte at a time: splits inside CRLF pairs and inside multi-byte UTF-8 characters.
    byte_by_byte: dict[str, Any] = client_page.evaluate(
        """(stream) => {
            const events = [];
            let retry = null;
            const parser = new SSEHub.Parser({
                onEvent: (e) => events.push(e), onRetry: (ms) => { retry = ms; } });
            const bytes = new TextEncoder().encode(stream);
            for (const byte of bytes) parser.feed(new Uint8Array([byte]));
            parser.end();
            return {events, retry, lastEventId: parser.lastEventId};
        }""",
        stream,
    )
    assert byte_by_byte == whole
    assert whole["events"][-1]["lastEventId"] == "3"


def test_event_stream_keeps_what_fetch_loses(
    hub: DemoHub, proxy: CuttableProxy, pages: Pages, unique: str
) -> None:
    """Headers on every request, custom event types, topics, `retry:` honoured, Last-Event-ID on
    reconnect after a real drop, and close()."""
    topic = f"prices-{unique}"
    page = pages.open(f"{proxy.url}/?connect=0")
    page.evaluate(
        """(topic) => {
            window.got = [];
            window.errors = [];
            const s = window.stream = new SSEHub.EventStream("/events?topic=" + topic, {
                headers: {Authorization: "Bearer s3cret"},
            });
            s.addEventListener("price", (e) => got.push([e.type, e.data, e.lastEventId, e.topics]));
            s.onmessage = (e) => got.push([e.type, e.data, e.lastEventId, e.topics]);
            s.onerror = (e) => errors.push([e.reason, e.delay, s.readyState]);
        }""",
        topic,
    )
    page.wait_for_function("() => stream.readyState === SSEHub.OPEN")
    first = hub.publish(topic, "101.5", "price")
    page.wait_for_function("() => got.length === 1")
    # The retry hint of the hub (`retry: 250`) replaced the default of 3000 ms.
    assert page.evaluate("stream.retry") == RETRY_MS

    proxy.hold("/events")
    assert proxy.cut("/events") == 1
    proxy.wait_for(lambda: len(proxy.seen("/events", "last-event-id")) == 1)
    missed = hub.publish(topic, "hello")
    proxy.release()
    page.wait_for_function("() => got.length === 2")

    assert page.evaluate("got") == [
        ["price", "101.5", first, [topic]],
        ["message", "hello", missed, [topic]],
    ]
    [error] = page.evaluate("errors")
    assert error[1] == RETRY_MS and error[2] == 0  # reconnecting after exactly the retry delay
    first_request, reconnect = proxy.seen("/events")
    assert first_request.headers["authorization"] == "Bearer s3cret"
    assert "last-event-id" not in first_request.headers
    assert reconnect.headers["authorization"] == "Bearer s3cret"
    assert reconnect.headers["last-event-id"] == first
    assert page.evaluate("stream.reconnects") == 1

    # close(): nothing more arrives, while a second stream on the same topic still gets events.
    page.evaluate(
        """(topic) => {
            stream.close();
            window.control = [];
            const c = new SSEHub.EventStream("/events?topic=" + topic);
            c.onmessage = (e) => control.push(e.data);
            window.controlStream = c;
        }""",
        topic,
    )
    page.wait_for_function("() => controlStream.readyState === SSEHub.OPEN")
    hub.publish(topic, "after close")
    page.wait_for_function("() => control.length === 1")
    assert page.evaluate("got.length") == 2
    assert page.evaluate("stream.readyState") == 2
    page.evaluate("controlStream.close()")


def test_event_stream_gives_up_on_a_client_error(hub: DemoHub, client_page: Page) -> None:
    """As EventSource does: a 4xx (here: no topic) closes the stream for good, no retry loop."""
    client_page.evaluate(
        """() => {
            window.failures = [];
            const s = window.bad = new SSEHub.EventStream("/events");
            s.onerror = (e) => failures.push([e.status, s.readyState, e.reason]);
        }"""
    )
    client_page.wait_for_function("() => failures.length === 1")
    [[status, state, reason]] = client_page.evaluate("failures")
    assert (status, state, reason) == (400, 2, "HTTP 400")


def test_subscription_per_topic_handlers(hub: DemoHub, client_page: Page, unique: str) -> None:
    orders, alerts = f"orders-{unique}", f"alerts-{unique}"
    client_page.evaluate(
        """([orders, alerts]) => {
            window.seen = {orders: [], alerts: [], any: [], typed: [], states: []};
            window.sub = new SSEHub.Hub().subscribe([orders, alerts])
                .on(orders, (e) => seen.orders.push(e.data))
                .on(alerts, (e) => seen.alerts.push(e.data))
                .on("*", (e) => seen.any.push(e.type))
                .onEvent("shipped", (e) => seen.typed.push(e.json().order))
                .onState((s) => seen.states.push(s));
        }""",
        [orders, alerts],
    )
    client_page.wait_for_function("() => sub.state === 'open'")
    assert client_page.evaluate("sub.transport") == "fetch"  # per-topic handlers need topics
    hub.publish(orders, "o1")
    hub.publish(alerts, "a1")
    hub.publish([orders, alerts], '{"order": 7}', "shipped")
    client_page.wait_for_function("() => seen.any.length === 3")
    assert client_page.evaluate("seen") == {
        "orders": ["o1", '{"order": 7}'],
        "alerts": ["a1", '{"order": 7}'],
        "any": ["message", "message", "shipped"],
        "typed": [7],
        "states": ["connecting", "open"],
    }
    # One topic and only typed handlers: the browser's own EventSource.
    client_page.evaluate(
        """(orders) => {
            window.native = [];
            window.single = new SSEHub.Hub().subscribe(orders)
                .onEvent("message", (e) => native.push([e.data, e.topics, e.id]));
        }""",
        orders,
    )
    client_page.wait_for_function("() => single.state === 'open'")
    assert client_page.evaluate("single.transport") == "eventsource"
    event_id = hub.publish(orders, "o2")
    client_page.wait_for_function("() => native.length === 1")
    assert client_page.evaluate("native") == [["o2", [orders], event_id]]
    client_page.evaluate("sub.close(); single.close()")


def test_native_event_source_resumes_with_last_event_id_after_a_drop(
    hub: DemoHub, proxy: CuttableProxy, pages: Pages, unique: str
) -> None:
    """The log tail page uses the browser's own EventSource; the proxy cuts its connection and
    holds the reconnect while lines are written: the page ends with every line exactly once."""
    topic = f"logs-{unique}"
    page = pages.open(f"{proxy.url}/demos/logs.html?topic={topic}")
    expect(page.locator("#state")).to_have_text("open")
    written = [f"line {n}" for n in range(1, 7)]
    ids = [hub.publish(topic, line) for line in written[:3]]
    expect(page.locator(".terminal .line .text")).to_have_text(written[:3])

    proxy.hold("/events")
    assert proxy.cut("/events") == 1
    expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting")
    # The browser's reconnect is waiting at the proxy: publish what it must not miss.
    proxy.wait_for(lambda: len(proxy.seen("/events", "last-event-id")) == 1)
    ids += [hub.publish(topic, line) for line in written[3:]]
    proxy.release()

    expect(page.locator(".terminal .line .text")).to_have_text(written)
    expect(page.locator("#state")).to_have_text("open")
    line_ids = page.locator(".terminal .line").evaluate_all("ls => ls.map(l => l.dataset.id)")
    assert line_ids == ids  # in order, none missing, none doubled
    [reconnect] = proxy.seen("/events", "last-event-id")
    assert reconnect.headers["last-event-id"] == ids[2]
    assert reconnect.path == f"/events?topic={topic}"


def test_ten_tabs_share_one_connection(fresh_hub: DemoHub, pages: Pages) -> None:
    tabs = [pages.open(f"{fresh_hub.url}/demos/notifications.html") for _ in range(10)]
    for tab in tabs:
        expect(tab.locator("#state")).to_have_text("open")
    for tab in tabs:
        expect(tab.locator("body")).to_have_attribute("data-tabs", "10")
    expect(tabs[-1].locator("#connection")).to_have_text(
        "Connection: one connection shared by 10 tabs."
    )
    fresh_hub.wait_for(lambda: fresh_hub.metric("open_streams") == 1)

    tabs[3].fill("#title", "Shared by all")
    tabs[3].click("#send")
    for tab in tabs:
        expect(tab.locator("#received .note-title")).to_have_text(["Shared by all"])
    screenshot(tabs[0], "notifications-shared")

    # Tabs that close leave the group (their Web Lock is released); the last one closes it.
    for tab in tabs[1:]:
        tab.close()
    expect(tabs[0].locator("body")).to_have_attribute("data-tabs", "1")
    assert fresh_hub.metric("open_streams") == 1
    tabs[0].close()
    fresh_hub.wait_for(lambda: fresh_hub.metric("open_streams") == 0)


def test_a_dropped_shared_connection_resumes_for_every_tab(
    hub: DemoHub, proxy: CuttableProxy, pages: Pages
) -> None:
    tabs = [pages.open(f"{proxy.url}/demos/notifications.html") for _ in range(3)]
    for tab in tabs:
        expect(tab.locator("body")).to_have_attribute("data-tabs", "3")
    assert len(proxy.seen("/events")) == 1  # one connection for the three tabs

    proxy.hold("/events")
    assert proxy.cut("/events") == 1
    for tab in tabs:
        expect(tab.locator("#state")).to_have_attribute("data-state", "reconnecting")
    proxy.wait_for(lambda: len(proxy.seen("/events", "last-event-id")) == 1)
    response = httpx.post(
        f"{hub.url}/demo/notify", json={"title": "Sent during the drop", "level": "info"}
    )
    proxy.release()

    for tab in tabs:
        expect(tab.locator("#received .note-title")).to_have_text(["Sent during the drop"])
        expect(tab.locator("#received .event")).to_have_attribute("data-id", response.json()["id"])
    assert len(proxy.seen("/events")) == 2  # the first connection and one shared reconnect
