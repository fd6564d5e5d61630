"""Retake the README's screenshots from a clean run: `.venv/bin/python docs/screenshots/take.py`.

Starts `ssehub serve --demo` on port 8000 (the port `make run` shows), drives Debian's Chromium
(tests/support/chromium.py) through Playwright, and writes console.png, console-phone.png and
chat.png here. Port 8000 must be free.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from support.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

URL = "http://127.0.0.1:8000"


def publish(topic: str | list[str], data: str, event: str = "message") -> None:
    body = {"topic": topic, "data": data, "event": event}
    httpx.post(f"{URL}/publish", json=body, timeout=5).raise_for_status()


def main() -> None:
    hub = subprocess.Popen(
        [sys.executable, "-m", "ssehub", "serve", "--demo", "--port", "8000"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stderr is not None
        for line in hub.stderr:
            if "serving on" in line:
                break
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, options in [
                ("console", {"viewport": {"width": 1280, "height": 1180}}),
                (
                    "console-phone",
                    {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2},
                ),
            ]:
                page = browser.new_context(**options).new_page()  # type: ignore[arg-type]
                page.goto(f"{URL}/?topics=orders,alerts")
                expect(page.locator("#state")).to_contain_text("open")
                page.fill("#pub-topic", "orders")
                page.fill("#pub-event", "created")
                page.fill("#pub-data", '{"order": 1017, "items": [{"sku": "A-1", "qty": 2}]}')
                page.click("#publish")
                publish("alerts", "disk 91% full on db-2")
                publish(["orders", "alerts"], '{"order": 1012, "reason": "payment failed"}',
                        "cancelled")  # fmt: skip
                expect(page.locator("#events .event:not(.system)")).to_have_count(3)
                # The curl blocks, open: they must wrap inside the panel at both widths.
                page.evaluate("document.querySelectorAll('details').forEach((d) => d.open = true)")
                page.evaluate("document.activeElement.blur()")
                # Full page on the phone only: its header is not sticky there.
                page.screenshot(path=str(HERE / f"{name}.png"), full_page=name.endswith("phone"))
                page.context.close()
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{URL}/demos/chat.html")
            page.fill("#prompt", "What is SSE?")
            page.press("#prompt", "Enter")
            expect(page.locator("#send")).to_be_enabled(timeout=30_000)
            page.screenshot(path=str(HERE / "chat.png"))
            browser.close()
    finally:
        hub.terminate()
        hub.wait(timeout=10)


if __name__ == "__main__":
    main()
