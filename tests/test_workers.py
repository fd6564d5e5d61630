"""Several hub processes on one port: `ssehub serve --workers N` and `uvicorn --workers N` with
`hub.asgi_app()`, on Redis. An event published through any worker reaches the subscribers of
every worker: the bug of one hub per worker, which silently splits subscribers, cannot happen.

Connections land on the workers as the kernel spreads them (SO_REUSEPORT, or uvicorn's shared
socket); with 16 subscriber connections and 16 publishing connections, all of them landing on one
worker has a chance of 2^-31, so a test that passes shows the workers share events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.hub_http import Stream, open_position
from support.redis_server import REDIS_SERVER, RedisServer, free_port

from ssehub.wire import Decoder

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

SUBSCRIBERS = 16
EVENTS = 16


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def backend(redis_server: RedisServer) -> str:
    return f"{redis_server.url}?prefix=workers-{uuid.uuid4().hex[:8]}"


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before it served"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling for a server that has not bound its port yet
    raise AssertionError("the workers did not answer /healthz")


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def every_subscriber_gets_every_event(url: str) -> None:
    clients = [httpx.Client(timeout=20) for _ in range(SUBSCRIBERS)]
    contexts = [c.stream("GET", f"{url}/events", params={"topic": "t"}) for c in clients]
    try:
        streams = []
        for context in contexts:
            response = context.__enter__()
            assert response.status_code == 200
            stream = Stream(response, Decoder())
            open_position(stream)
            streams.append(stream)
        sent = []
        for i in range(EVENTS):  # a new connection each: they land on any worker
            reply = httpx.post(f"{url}/publish", data={"topic": "t", "data": str(i)})
            assert reply.status_code == 200, reply.text
            sent.append(reply.json()["ids"][0])
        for stream in streams:
            events = stream.take(EVENTS)
            assert [e.data for e in events] == [str(i) for i in range(EVENTS)]
            assert [e.id for e in events] == sent
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
        for client in clients:
            client.close()


def test_serve_workers_share_every_event_and_stop_together(backend: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssehub",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--backend",
            backend,
        ],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        workers = children_of(process.pid)
        assert len(workers) == 2
        every_subscriber_gets_every_event(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("backend_url", ["memory", "sqlite:///hub.db"])
def test_workers_without_a_shared_backend_are_refused_in_one_line(
    backend_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssehub",
            "serve",
            "--port",
            "0",
            "--workers",
            "2",
            "--backend",
            backend_url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "redis://" in result.stderr


def test_uvicorn_workers_share_every_event(backend: str) -> None:
    port = free_port()
    env = {**os.environ, "SSEHUB_BACKEND": backend}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "support.asgi_redis_app:app",
            "--app-dir",
            str(Path(__file__).parent),
            "--workers",
            "2",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        every_subscriber_gets_every_event(url)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
