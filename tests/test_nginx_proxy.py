"""The hub behind a stock nginx reverse proxy: streams must not be buffered, resume must work."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub.wire import Decoder, Event

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (make test installs it)"
)

# Deliberately default proxy settings (buffering on): the hub's X-Accel-Buffering header is
# what must keep nginx from holding events back.
CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream hub {{ server {upstream}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://hub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;  # the name clients used: the hub's Host allowlist checks it
    }}
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def proxied(start_hub: Callable[..., HubProcess], tmp_path: Path) -> Iterator[tuple[str, str]]:
    hub = start_hub()
    port = _free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        CONFIG.format(dir=tmp_path, upstream=hub.url.removeprefix("http://"), port=port)
    )
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:  # nginx gives no readiness signal; connect until it listens
            try:
                httpx.get(f"{url}/healthz").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
                time.sleep(0.05)
        yield url, hub.url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def _events(chunks: Iterator[bytes], decoder: Decoder, count: int) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
        if len(events) >= count:
            break
    return events


def test_events_pass_through_nginx_unbuffered_and_resume(proxied: tuple[str, str]) -> None:
    via_nginx, direct = proxied
    decoder = Decoder()
    with httpx.stream("GET", f"{via_nginx}/events?topic=t", timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        # The opening must arrive at once, not when a proxy buffer fills.
        chunks = response.iter_raw()
        for chunk in chunks:
            decoder.feed(chunk)
            if decoder.last_event_id:
                break
        httpx.post(f"{direct}/publish", data={"topic": "t", "data": "first"})
        [first] = _events(chunks, decoder, 1)
    assert first.data == "first"
    httpx.post(f"{direct}/publish", data={"topic": "t", "data": "missed"})
    headers = {"Last-Event-ID": decoder.last_event_id}
    with httpx.stream("GET", f"{via_nginx}/events?topic=t", headers=headers, timeout=10) as resumed:
        [missed] = _events(resumed.iter_raw(), Decoder(decoder.last_event_id), 1)
    assert missed.data == "missed"


def test_publishing_through_nginx_with_keep_alive(proxied: tuple[str, str]) -> None:
    via_nginx, _ = proxied
    with httpx.Client(base_url=via_nginx) as client:
        ids = [
            client.post("/publish", data={"topic": "t", "data": str(i)}).json()["ids"][0]
            for i in range(20)
        ]
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
