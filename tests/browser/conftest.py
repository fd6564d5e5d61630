"""Browser tests: a real `ssehub serve --demo` process and Debian's Chromium driven by Playwright.

Only /usr/bin/chromium is used (never a downloaded browser); without it every test here is
skipped with the reason. Screenshots go to artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.tcp_proxy import CuttableProxy

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
RETRY_MS = 250  # the hub's reconnect hint: keeps reconnect tests quick
_READY = re.compile(r"serving on (http://[\d.]+:(\d+))/")

expect.set_options(timeout=10_000)


# -- the hub ------------------------------------------------------------------------------------


@dataclass
class DemoHub:
    """`ssehub serve --demo` in its own process."""

    process: subprocess.Popen[str]
    url: str
    port: int
    log: list[str] = field(default_factory=list)

    def publish(self, topic: str | list[str], data: str, event: str | None = None) -> str:
        body: dict[str, object] = {"topic": topic, "data": data}
        if event:
            body["event"] = event
        response = httpx.post(f"{self.url}/publish", json=body, timeout=5)
        response.raise_for_status()
        event_id: str = response.json()["ids"][0]
        return event_id

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        match = re.search(rf"^ssehub_{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll a condition on the hub side (metrics and the like) until it holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("hub condition not met in time")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_demo_hub(*args: str) -> DemoHub:
    command = [
        sys.executable,
        *("-m", "ssehub", "serve", "--demo", "--port", "0", "--metrics-topics", "1000"),
        *("--retry", str(RETRY_MS), "--heartbeat", "5"),
        *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert process.stderr is not None
    log: list[str] = []
    for line in process.stderr:
        log.append(line)
        match = _READY.search(line)
        if match:
            threading.Thread(target=log.extend, args=(process.stderr,), daemon=True).start()
            return DemoHub(process, match.group(1), int(match.group(2)), log)
    process.wait(timeout=10)
    raise RuntimeError("ssehub serve --demo exited before listening:\n" + "".join(log))


@pytest.fixture(scope="package")
def hub() -> Iterator[DemoHub]:
    demo = start_demo_hub()
    yield demo
    demo.stop()


@pytest.fixture
def fresh_hub() -> Iterator[DemoHub]:
    """A hub of its own, for tests that count its connections."""
    demo = start_demo_hub()
    yield demo
    demo.stop()


@pytest.fixture
def proxy(hub: DemoHub) -> Iterator[CuttableProxy]:
    """A cuttable TCP proxy in front of the session hub: load pages from `proxy.url`."""
    cuttable = CuttableProxy("127.0.0.1", hub.port).start()
    yield cuttable
    cuttable.stop()


@pytest.fixture
def unique() -> str:
    """A fresh topic suffix, so tests sharing the session hub never see each other's events."""
    return uuid.uuid4().hex[:10]


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):  # pragma: no cover - depends on the machine
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium, or "
            "`make system-deps`); these tests use no other browser"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Pages:
    """Opens pages in one browser context and remembers every script error they raise."""

    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def open(self, url: str) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{url}: console.error: {message.text}")
                if message.type == "error" and "Failed to load resource" not in message.text
                else None
            ),
        )
        page.goto(url)
        return page


def _context(browser: Browser, **options: object) -> Iterator[Pages]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    pages = Pages(context)
    yield pages
    context.close()
    assert not pages.errors, "script errors in the page:\n" + "\n".join(pages.errors)


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """A fresh browser context (desktop size); fails the test on any page script error."""
    yield from _context(browser, viewport={"width": 1280, "height": 860})


@pytest.fixture
def phone_pages(browser: Browser) -> Iterator[Pages]:
    yield from _context(
        browser,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot as a test artifact (artifacts/screenshots/<name>.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path
