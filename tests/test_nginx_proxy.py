"""The shipped nginx configuration (deploy/nginx.conf), run for real in front of two hub nodes.

The file is rendered with this test's ports and paths only (`render`: each replaced text must
be in the file), so the configuration users copy is the one tested: TLS from a certificate made
here, HTTP/2 to the browser, an upstream over two Redis-backed nodes, per-node metrics, the
redirect from plain HTTP. Chromium (Debian's, through Playwright) then opens more than six
EventSources on one page: all of them receive over HTTP/2, where over HTTP/1.1 the browser
holds the seventh back until one of the six closes.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.deploy_files import NGINX_CONFIG, node_arguments
from support.hub_process import HubProcess, start_hub_process
from support.redis_server import REDIS_SERVER, RedisServer, free_port

from ssehub.wire import Decoder, Event

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
METRICS_TOKEN = "scrape-secret"
pytestmark = [
    pytest.mark.skipif(
        not Path(NGINX).exists(), reason="nginx is not installed (make test installs it)"
    ),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]


def render(template: str, replacements: dict[str, str]) -> str:
    """`template` with each key replaced; a key the file no longer holds fails the test, so
    the shipped configuration cannot drift away from the tested one unnoticed."""
    for shipped, tested in replacements.items():
        assert shipped in template, f"deploy/nginx.conf no longer contains {shipped!r}"
        template = template.replace(shipped, tested)
    return template


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Site:
    """nginx (the shipped configuration) in front of two hub nodes on one Redis."""

    h2: str  # https, HTTP/2 (and 1.1) as shipped
    h1: str  # https, HTTP/1.1 only: a second listen line the test adds, for the comparison
    plain: str  # http: redirects to https
    nodes: tuple[HubProcess, HubProcess]
    cert: Path

    def client(self, base_url: str) -> httpx.Client:
        trust = ssl.create_default_context(cafile=self.cert)
        return httpx.Client(base_url=base_url, verify=trust, timeout=10)

    def publish(self, topic: str, data: str) -> str:
        """Published on the first node directly: the nodes share every event through Redis."""
        reply = httpx.post(f"{self.nodes[0].url}/publish", data={"topic": topic, "data": data})
        reply.raise_for_status()
        event_id: str = reply.json()["ids"][0]
        return event_id

    def open_streams(self) -> list[int]:
        """Each node's open streams, from its /metrics (read directly, from loopback)."""
        counts = []
        for node in self.nodes:
            text = httpx.get(f"{node.url}/metrics").text
            match = re.search(r"^ssehub_open_streams (\d+)$", text, re.MULTILINE)
            assert match, text
            counts.append(int(match.group(1)))
        return counts


def wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in time: {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("nginx")
    cert, key = make_certificate(directory)
    with RedisServer() as redis:
        nodes = tuple(
            # As deploy/ssehub@.service starts them, on a test port and with the settings
            # its environment file would give.
            start_hub_process(
                *node_arguments(), "--backend", redis.url, "--metrics-token", METRICS_TOKEN
            )
            for _ in range(2)
        )
        h2, h1, plain = free_port(), free_port(), free_port()
        node1, node2 = (node.url.removeprefix("http://") for node in nodes)
        config = directory / "nginx.conf"
        config.write_text(
            render(
                NGINX_CONFIG.read_text(),
                {
                    "worker_processes auto;": "worker_processes 1;",
                    "pid /run/nginx.pid;": f"pid {directory}/nginx.pid;",
                    "/var/log/nginx/": f"{directory}/",
                    "    listen 80;": f"    listen 127.0.0.1:{plain};",
                    "    listen [::]:80;\n": "",
                    "    listen 443 ssl http2;": (
                        f"    listen 127.0.0.1:{h2} ssl http2;\n        listen 127.0.0.1:{h1} ssl;"
                    ),
                    "    listen [::]:443 ssl http2;\n": "",
                    "/etc/letsencrypt/live/sse.example.com/fullchain.pem": str(cert),
                    "/etc/letsencrypt/live/sse.example.com/privkey.pem": str(key),
                    "127.0.0.1:8001": node1,
                    "127.0.0.1:8002": node2,
                },
            )
            # nginx's temporary files in the test's directory, not /var/lib/nginx.
            .replace(
                "http {\n",
                "http {\n"
                + "".join(
                    f"    {kind}_temp_path {directory}/{kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                ),
                1,
            )
        )
        check = subprocess.run(
            [NGINX, "-t", "-p", str(directory), "-c", str(config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(config), "-g", "daemon off;"]
        )
        try:
            host = "https://127.0.0.1"
            ready = Site(f"{host}:{h2}", f"{host}:{h1}", f"http://127.0.0.1:{plain}", nodes, cert)
            with ready.client(ready.h2) as client:
                # nginx gives no readiness signal: connect until it listens.
                wait_until(lambda: _answers(client), "nginx listening")
            yield ready
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
            for node in nodes:
                node.terminate()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _events(chunks: Iterator[bytes], decoder: Decoder, count: int) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
        if len(events) >= count:
            break
    return events


# -- HTTP through the proxy ---------------------------------------------------------------------


def test_events_pass_through_unbuffered_and_resume_on_either_node(site: Site) -> None:
    decoder = Decoder()
    with (
        site.client(site.h1) as client,
        client.stream("GET", "/events?topic=t") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        # The opening must arrive at once, not when a proxy buffer fills.
        chunks = response.iter_raw()
        for chunk in chunks:
            decoder.feed(chunk)
            if decoder.last_event_id:
                break
        site.publish("t", "first")
        [first] = _events(chunks, decoder, 1)
    assert first.data == "first"
    site.publish("t", "missed")
    headers = {"Last-Event-ID": decoder.last_event_id}
    # Round robin: of two resumes in a row, one lands on each node; both replay from Redis.
    for _ in range(2):
        with (
            site.client(site.h1) as client,
            client.stream("GET", "/events?topic=t", headers=headers) as resumed,
        ):
            [missed] = _events(resumed.iter_raw(), Decoder(decoder.last_event_id), 1)
        assert missed.data == "missed"


def test_publishing_through_the_proxy_with_keep_alive(site: Site) -> None:
    with site.client(site.h1) as client:
        ids = [
            client.post("/publish", data={"topic": "t", "data": str(i)}).json()["ids"][0]
            for i in range(20)
        ]
    # Redis ids: one order across both nodes, whichever node took each publish.
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


def test_health_metrics_and_the_https_redirect(site: Site) -> None:
    with site.client(site.h2) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        # Per node, never a random one behind the load balancer.
        assert client.get("/metrics").status_code == 404
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        for node in ("node1", "node2"):
            scrape = client.get(f"/metrics/{node}", headers=bearer)
            assert scrape.status_code == 200
            assert "ssehub_open_streams" in scrape.text
    redirect = httpx.get(f"{site.plain}/events?topic=t")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://127.0.0.1/events?topic=t"


# -- the browser: HTTP/2 lifts the six-connection limit -------------------------------------------

OPEN_STREAMS = """(count) => {
    window.streams = [];
    for (let i = 0; i < count; i++) {
        const source = new EventSource(`/events?topic=all&topic=only-${i}`);
        const stream = {source, opened: false, got: []};
        source.onopen = () => { stream.opened = true; };
        source.onmessage = (event) => { stream.got.push(event.data); };
        window.streams.push(stream);
    }
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):  # pragma: no cover - depends on the machine
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser: object, url: str) -> object:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(f"{url}/healthz")  # any page of the origin: the streams are same-origin
    return page


def test_over_http2_a_page_receives_on_eight_streams_at_once(browser: object, site: Site) -> None:
    page = _page(browser, site.h2)
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    try:
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "h2"
        page.evaluate(OPEN_STREAMS, 8)
        page.wait_for_function("window.streams.every((stream) => stream.opened)")
        opened = site.open_streams()
        assert sum(opened) == 8
        assert all(opened), f"the upstream spreads the streams over both nodes: {opened}"
        site.publish("all", "to every stream")
        page.wait_for_function(
            "window.streams.every((stream) => stream.got.includes('to every stream'))"
        )
    finally:
        page.context.close()


def test_over_http11_the_seventh_stream_waits_for_a_free_connection(
    browser: object, site: Site
) -> None:
    page = _page(browser, site.h1)
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    try:
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "http/1.1"
        page.evaluate(OPEN_STREAMS, 8)
        opened = "window.streams.filter((stream) => stream.opened)"
        page.wait_for_function(f"{opened}.length === 6")
        wait_until(lambda: sum(site.open_streams()) == 6, "six streams open on the nodes")
        site.publish("all", "to the open six")
        page.wait_for_function(f"{opened}.every((stream) => stream.got.length === 1)")
        # The browser holds the other two back: not open, nothing received.
        held = "window.streams.filter((stream) => !stream.opened)"
        assert page.evaluate(f"{held}.map((stream) => stream.got.length)") == [0, 0]
        # Queued, not refused: closing one of the six lets one of them through.
        page.evaluate(f"{opened}[0].source.close()")
        page.wait_for_function(f"{opened}.length === 7")
    finally:
        page.context.close()
