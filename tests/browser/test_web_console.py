"""The hub console (`GET /`): subscribe, see events live, publish, copy curl lines."""

from __future__ import annotations

import json
import re
import subprocess

from playwright.sync_api import expect
from support.tcp_proxy import CuttableProxy

from .conftest import DemoHub, Pages, screenshot


def test_console_publishes_and_receives_on_several_topics(hub: DemoHub, pages: Pages) -> None:
    # Plain names (no other test uses them) make a clean screenshot for the README.
    orders, alerts = "orders", "alerts"
    page = pages.open(f"{hub.url}/?topics={orders},{alerts}")
    expect(page.locator("#state")).to_have_text("open")
    expect(page.locator("#events .event.system").first).to_contain_text(
        f"connected to {orders}, {alerts} (fetch transport)"
    )

    # Publishing errors are shown, not swallowed.
    page.fill("#pub-topic", "x" * 300)
    page.click("#publish")
    expect(page.locator("#publish-result")).to_contain_text(
        "is invalid: a topic is 1 to 256 printable characters"
    )
    expect(page.locator("#publish-result")).to_have_attribute("data-kind", "error")

    # Publish from the form: JSON data, a custom event type.
    page.fill("#pub-topic", orders)
    page.fill("#pub-event", "created")
    page.fill("#pub-data", '{"order": 1017, "items": [{"sku": "A-1", "qty": 2}], "total": 39.9}')
    page.click("#publish")
    expect(page.locator("#publish-result")).to_contain_text("Published id ")
    created = page.locator('#events .event[data-type="created"]')
    expect(created).to_have_count(1)
    expect(created.locator(".topic")).to_have_text([orders])
    expect(created.locator(".event-type")).to_have_text("created")
    # Pretty-printed JSON, exactly as JSON.stringify(value, null, 2) lays it out.
    pretty = json.dumps(
        {"order": 1017, "items": [{"sku": "A-1", "qty": 2}], "total": 39.9}, indent=2
    )
    expect(created.locator(".event-data")).to_have_text(pretty)
    published_id = page.locator("#publish-result").inner_text().split()[2]
    expect(created).to_have_attribute("data-id", published_id)
    expect(created.locator(".event-id")).to_have_text(f"#{published_id}")
    expect(created.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))

    # From outside: plain text to one topic, then one event to both topics (one row, two chips),
    # and nothing from a topic the console did not subscribe to.
    hub.publish("other", "not for the console")
    hub.publish(alerts, "disk 91% full on db-2")
    both_id = hub.publish(
        [orders, alerts], '{"order": 1012, "reason": "payment failed"}', "cancelled"
    )
    expect(page.locator(f'#events .event[data-id="{both_id}"] .topic')).to_have_text(
        [orders, alerts]
    )
    expect(page.locator("#events .event:not(.system)")).to_have_count(3)
    expect(page.locator("#events")).not_to_contain_text("not for the console")
    expect(page.locator("#count")).to_have_text("3")
    expect(page.locator("#last-id")).to_have_text(both_id)
    # Newest first.
    expect(page.locator("#events .event:not(.system) .event-data").first).to_contain_text("1012")

    page.evaluate("document.activeElement.blur()")
    screenshot(page, "console")


def test_console_curl_lines_are_copy_paste_ready(hub: DemoHub, pages: Pages, unique: str) -> None:
    topic = f"curl-{unique}"
    page = pages.open(f"{hub.url}/?topics={topic},extra-{unique}")
    expect(page.locator("#state")).to_have_text("open")
    subscribe = page.locator("#curl-subscribe").inner_text()
    assert f"/events?topic={topic}&topic=extra-{unique}" in subscribe
    page.fill("#last-event-id", "12345")
    expect(page.locator("#curl-subscribe")).to_contain_text("-H 'Last-Event-ID: 12345'")

    # Run the publish line exactly as shown (shell quoting included): the console receives it.
    page.fill("#pub-topic", topic)
    page.fill("#pub-event", "greeting")
    page.fill("#pub-data", 'it\'s "quoted" & $HOME')
    command = page.locator("#curl-publish").inner_text()
    result = subprocess.run(
        ["sh", "-c", command + " -s"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stderr
    event_id = json.loads(result.stdout)["ids"][0]
    row = page.locator(f'#events .event[data-id="{event_id}"]')
    expect(row.locator(".event-data")).to_have_text('it\'s "quoted" & $HOME')
    expect(row.locator(".event-type")).to_have_text("greeting")

    # And the subscribe line is a working stream.
    page.fill("#last-event-id", "")
    command = page.locator("#curl-subscribe").inner_text()
    stream = subprocess.run(
        ["sh", "-c", command + " -s --max-time 1"], capture_output=True, text=True, timeout=10
    )
    assert stream.stdout.startswith(": ssehub\n"), stream.stdout


def test_console_replays_from_a_last_event_id(hub: DemoHub, pages: Pages, unique: str) -> None:
    topic = f"replay-{unique}"
    first = hub.publish(topic, "one")
    second = hub.publish(topic, "two")
    third = hub.publish(topic, "three", "update")
    page = pages.open(f"{hub.url}/?topics={topic}&last_event_id={first}")
    expect(page.locator("#last-event-id")).to_have_value(first)
    rows = page.locator("#events .event:not(.system)")
    expect(rows).to_have_count(2)
    expect(rows.locator(".event-data")).to_have_text(["three", "two"])
    expect(rows.nth(0)).to_have_attribute("data-id", third)
    expect(rows.nth(1)).to_have_attribute("data-id", second)
    # A resume point the hub cannot honour shows the explicit reset.
    page.fill("#last-event-id", "42")
    page.click("#connect")
    expect(page.locator('#events .event[data-type="reset"]')).to_have_count(1)
    expect(page.locator("#events")).to_contain_text("reset: the hub could not replay")


def test_console_renders_event_data_as_text_never_html(
    hub: DemoHub, pages: Pages, unique: str
) -> None:
    topic = f"xss-{unique}"
    page = pages.open(f"{hub.url}/?topics={topic}")
    expect(page.locator("#state")).to_have_text("open")
    payload = '<img src=x onerror="window.__owned = 1"><script>window.__owned = 2</script>'
    hub.publish(topic, payload, "<b>bold</b>")
    row = page.locator("#events .event:not(.system)")
    expect(row.locator(".event-data")).to_have_text(payload)
    expect(row.locator(".event-type")).to_have_text("<b>bold</b>")
    assert page.locator("#events img, #events script, #events b").count() == 0
    assert page.evaluate("window.__owned") is None


def test_console_shows_drops_and_reconnects(
    hub: DemoHub, proxy: CuttableProxy, pages: Pages, unique: str
) -> None:
    topic = f"drop-{unique}"
    page = pages.open(f"{proxy.url}/?topics={topic}")
    expect(page.locator("#state")).to_have_text("open")
    hub.publish(topic, "before the drop")
    expect(page.locator("#count")).to_have_text("1")

    proxy.hold("/events")
    assert proxy.cut("/events") == 1
    expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#events")).to_contain_text("connection lost")
    proxy.wait_for(lambda: len(proxy.seen("/events", "last-event-id")) == 1)
    missed = hub.publish(topic, "published while disconnected")
    proxy.release()

    expect(page.locator("#state")).to_have_text("open")
    expect(page.locator("#reconnects")).to_have_text("1")
    expect(page.locator(f'#events .event[data-id="{missed}"]')).to_have_count(1)
    expect(page.locator("#events")).to_contain_text("reconnected with Last-Event-ID")
    expect(page.locator("#count")).to_have_text("2")


def test_console_on_a_phone(hub: DemoHub, phone_pages: Pages, unique: str) -> None:
    topic = f"phone-{unique}"
    page = phone_pages.open(f"{hub.url}/?topics={topic}")
    expect(page.locator("#state")).to_have_text("open")
    hub.publish(topic, '{"temperature": 21.5, "unit": "C", "sensor": "kitchen"}')
    expect(page.locator("#events .event:not(.system)")).to_have_count(1)
    # Nothing wider than the screen: no sideways scrolling.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    screenshot(page, "console-phone")
