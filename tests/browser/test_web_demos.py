"""The demo pages of `ssehub serve --demo`, each driven in Chromium."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect
from support.tcp_proxy import CuttableProxy

from ssehub.demo import answer, answer_tokens

from .conftest import DemoHub, Pages, screenshot


def test_demo_index_links_every_demo(hub: DemoHub, pages: Pages) -> None:
    page = pages.open(f"{hub.url}/demos/")
    links = page.locator(".cards a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert links == [
        "clock.html",
        "notifications.html",
        "chat.html",
        "logs.html",
        "dashboard.html",
        "../",
    ]
    for href in links:
        assert httpx.get(f"{hub.url}/demos/{href}").status_code == 200
    # The console links to the demos too.
    console = pages.open(f"{hub.url}/?connect=0")
    expect(console.locator('.topbar a[href="demos/"]')).to_have_text("Demos")
    screenshot(page, "demos")


NAV = ["Console", "Demos", "Clock", "Notifications", "AI chat", "Log tail", "Dashboard"]
PAGE_PATHS = ["", "demos/", "demos/clock.html", "demos/notifications.html", "demos/chat.html"]
PAGE_PATHS += ["demos/logs.html", "demos/dashboard.html"]


def test_every_page_has_the_same_top_bar_with_itself_marked(hub: DemoHub, pages: Pages) -> None:
    for path, label in zip(PAGE_PATHS, NAV, strict=True):
        page = pages.open(f"{hub.url}/{path}?connect=0")
        nav = page.locator(".topbar nav a")
        expect(nav).to_have_text(NAV)
        expect(page.locator('.topbar nav a[aria-current="page"]')).to_have_text(label)
        targets = nav.evaluate_all("as => as.map(a => a.href)")
        assert targets == [f"{hub.url}/{other}" for other in PAGE_PATHS], path
        expect(page.locator(".topbar a.brand")).to_have_attribute(
            "href", re.compile(r"^(\./|\.\./)$")
        )
        page.close()


def test_clock_ticks_then_closes_on_end(hub: DemoHub, pages: Pages) -> None:
    page = pages.open(f"{hub.url}/demos/clock.html?count=3&interval=150")
    expect(page.locator("body")).to_have_attribute("data-clock", "ended")
    expect(page.locator("#state")).to_have_text("closed")
    expect(page.locator("#ready-state")).to_have_text("EventSource.readyState: CLOSED")
    expect(page.locator("#log .event-type")).to_have_text(["end", "message", "message", "message"])
    ticks = page.locator("#log .event-data").all_inner_texts()
    assert [json.loads(t)["count"] for t in ticks[1:]] == [3, 2, 1]
    expect(page.locator("#time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("#tick")).to_contain_text("the end · connection closed")
    expect(page.locator("#progress")).to_have_attribute("style", re.compile("width: 100%"))
    screenshot(page, "clock")

    # Run again: a new session, from the start.
    page.click("#restart")
    expect(page.locator("body")).to_have_attribute("data-clock", "running")
    expect(page.locator("body")).to_have_attribute("data-clock", "ended")
    expect(page.locator("#log .event-type")).to_have_count(4)


def test_clock_session_resumes_rather_than_restarts(hub: DemoHub) -> None:
    """Server side: a reconnect to the same session with Last-Event-ID gets the rest only."""
    url = f"{hub.url}/demo/clock?session=resume-test&count=3&interval=50"
    with httpx.stream("GET", url, timeout=10) as response:
        body = ""
        for chunk in response.iter_text():
            body += chunk
            if "event: end" in body:
                break
    ids = re.findall(r"^id: (\d+)$", body, re.MULTILINE)
    with httpx.stream("GET", url, headers={"Last-Event-ID": ids[1]}, timeout=10) as response:
        rest = ""
        for chunk in response.iter_text():
            rest += chunk
            if "event: end" in rest:
                break
    assert '"count": 1' not in rest and '"count": 2' not in rest
    assert '"count": 3, "of": 3' in rest
    # An unknown session with a resume point is gone, not silently restarted.
    gone = httpx.get(
        f"{hub.url}/demo/clock?session=never-started", headers={"Last-Event-ID": ids[1]}
    )
    assert gone.status_code == 410


def test_notification_reaches_two_tabs(hub: DemoHub, pages: Pages) -> None:
    first = pages.open(f"{hub.url}/demos/notifications.html?shared=0")
    second = pages.open(f"{hub.url}/demos/notifications.html?shared=0")
    for tab in (first, second):
        expect(tab.locator("#state")).to_have_text("open")
        expect(tab.locator("#connection")).to_have_text("Connection: this tab's own EventSource.")

    first.fill("#title", "Build #42 passed")
    first.fill("#body", "all 1,284 tests green in 3m 12s")
    first.select_option("#level", "success")
    first.click("#send")
    expect(first.locator("#result")).to_contain_text("Sent as event")
    for tab in (first, second):
        toast = tab.locator('.toast[data-level="success"]')
        expect(toast.locator("strong")).to_have_text("Build #42 passed")
        expect(toast.locator("p")).to_have_text("all 1,284 tests green in 3m 12s")
        expect(tab.locator("#received .note-title")).to_have_text(["Build #42 passed"])

    # The same endpoint from outside the browser, as in the seed (`POST /notify`).
    response = httpx.post(
        f"{hub.url}/demo/notify",
        json={"title": "Disk almost full", "body": "db-2 at 91%", "level": "warning"},
    )
    assert response.status_code == 200
    for tab in (first, second):
        expect(tab.locator("#received .note-title")).to_have_text(
            ["Disk almost full", "Build #42 passed"]
        )
        expect(tab.locator("#received-count")).to_have_text("2")
    screenshot(second, "notifications")

    bad = httpx.post(f"{hub.url}/demo/notify", json={"title": "x", "level": "loud"})
    assert bad.status_code == 400 and "level" in bad.json()["error"]


def _chat_record(page: Page) -> dict[str, Any]:
    record: dict[str, Any] = page.evaluate(
        """() => {
            const a = chatDemo.answers[chatDemo.answers.length - 1];
            return {id: a.id, prompt: a.prompt, indices: a.indices, text: a.text,
                    drops: a.drops, done: a.done, problems: a.problems};
        }"""
    )
    return record


def _assert_complete(page: Page, prompt: str) -> dict[str, Any]:
    expect(page.locator('.bubble.ai[data-done="true"]')).to_have_count(1)
    record = _chat_record(page)
    tokens = answer_tokens(prompt)
    assert record["indices"] == list(range(len(tokens)))  # in order, none lost, none repeated
    assert record["text"] == answer(prompt)
    assert record["problems"] == []
    expect(page.locator(".bubble.ai .answer")).to_have_text(answer(prompt))
    return record


def test_chat_streams_the_answer_and_resumes_after_a_network_drop(
    hub: DemoHub, proxy: CuttableProxy, pages: Pages
) -> None:
    prompt = "How does resuming work?"
    page = pages.open(f"{proxy.url}/demos/chat.html")
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    expect(page.locator(".bubble.user")).to_have_text(prompt)
    page.wait_for_function("() => chatDemo.answers[0].indices.length >= 8")

    # Cut the POST's connection mid-answer; hold the reconnect while the model keeps writing.
    proxy.hold("/demo/chat")
    assert proxy.cut("/demo/chat") == 1
    proxy.wait_for(lambda: len(proxy.seen("/demo/chat", "last-event-id")) == 1)
    received = len(_chat_record(page)["indices"])
    topic = f"chat.{_chat_record(page)['id']}"
    hub.wait_for(lambda: hub.metric(f'topic_history_events{{topic="{topic}"}}') >= received + 10)
    expect(page.locator(".bubble.ai .meta")).to_contain_text("reconnecting in 250 ms")
    last_seen = page.evaluate("chatDemo.answers[0].stream.lastEventId")
    proxy.release()

    record = _assert_complete(page, prompt)
    assert record["drops"] == 1
    first, again = proxy.seen("/demo/chat")
    assert first.method == again.method == "POST"
    assert "last-event-id" not in first.headers
    assert again.headers["last-event-id"] == last_seen
    expect(page.locator(".bubble.ai .meta")).to_have_text(
        f"{len(answer_tokens(prompt))} tokens · resumed after 1 dropped connection, "
        "none lost or repeated"
    )


def test_chat_drop_button_resumes_exactly(hub: DemoHub, pages: Pages) -> None:
    prompt = "What is SSE?"
    page = pages.open(f"{hub.url}/demos/chat.html")
    screenshot(page, "chat-empty")
    page.click("#chips button >> text=What is SSE?")
    page.wait_for_function("() => chatDemo.answers[0].indices.length >= 5")
    page.click("#drop")  # EventStream.reconnect(): abort the fetch, reconnect after `retry`
    record = _assert_complete(page, prompt)
    assert record["drops"] == 1
    expect(page.locator("#state")).to_have_text("closed")
    expect(page.locator("#drop")).to_be_disabled()
    screenshot(page, "chat")

    # A second question is a new answer (a new id), streamed from its first token.
    page.fill("#prompt", "什么是 SSE？")
    page.click("#send")
    expect(page.locator('.bubble.ai[data-done="true"]')).to_have_count(2)
    second = _chat_record(page)
    assert second["text"] == answer("什么是 SSE？") and second["drops"] == 0


def test_log_tail_shows_lines_as_they_are_written(hub: DemoHub, pages: Pages) -> None:
    page = pages.open(f"{hub.url}/demos/logs.html")
    expect(page.locator("#state")).to_have_text("open")
    expect(page.locator("#pipe-command")).to_have_text(
        "tail -f /var/log/app.log | ssehub publish --topic logs -"
    )
    lines = [
        "2026-05-01 12:00:01 INFO  api    GET /orders 200 12ms",
        "2026-05-01 12:00:01 INFO  api    POST /orders 201 48ms",
        "2026-05-01 12:00:02 WARN  db     slow query (870ms): SELECT * FROM orders",
        "2026-05-01 12:00:03 ERROR pay    provider timeout after 5000ms (attempt 1/3)",
        "2026-05-01 12:00:04 INFO  pay    retry succeeded (attempt 2/3)",
    ]
    for n, line in enumerate(lines[:3], start=1):
        hub.publish("logs", line)
        expect(page.locator(".terminal .line")).to_have_count(n)  # each as it is written
    hub.publish("logs", "\n".join(lines[3:]))  # one event of two lines
    expect(page.locator(".terminal .line .text")).to_have_text(lines)
    expect(page.locator('.terminal .line[data-level="error"] .text')).to_have_text([lines[3]])
    expect(page.locator('.terminal .line[data-level="warn"] .text')).to_have_text([lines[2]])
    expect(page.locator("#line-count")).to_have_text("5")

    page.fill("#write", "2026-05-01 12:00:05 INFO  web    written from the page")
    page.click("#write-button")
    expect(page.locator(".terminal .line .text").last).to_have_text(
        "2026-05-01 12:00:05 INFO  web    written from the page"
    )
    expect(page.locator("#write")).to_have_value("")
    screenshot(page, "logs")


def test_dashboard_chart_updates_every_second(hub: DemoHub, pages: Pages) -> None:
    page = pages.open(f"{hub.url}/demos/dashboard.html")
    expect(page.locator("#state")).to_have_text("open")
    page.wait_for_function("() => Number(document.body.dataset.updates || 0) >= 3", timeout=8000)
    assert int(page.locator("#load-chart").get_attribute("data-points") or 0) >= 3
    expect(page.locator("#load-chart polyline.series")).to_have_count(1)
    expect(page.locator("#rate-chart polyline.series")).to_have_count(2)
    published = int(page.locator("#published").inner_text().replace(",", ""))
    assert published > 0
    expect(page.locator("#subscribers")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#load")).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("#published-rate")).to_have_text(re.compile(r"^\d+\.\d /s$"))
    before = page.locator("#load-chart polyline.series").get_attribute("points")
    page.wait_for_function("() => Number(document.body.dataset.updates) >= 4", timeout=8000)
    assert page.locator("#load-chart polyline.series").get_attribute("points") != before
    assert int(page.locator("#published").inner_text().replace(",", "")) > published
    screenshot(page, "dashboard")
