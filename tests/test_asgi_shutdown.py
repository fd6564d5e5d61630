"""Server shutdown ends open event streams promptly, on uvicorn, hypercorn and granian.

Each server runs an example app in a process of its own and gets a real SIGTERM while streams
are open. None of them ends a streaming response by itself: without ssehub's signal observer
uvicorn and granian would wait for the clients forever, so these tests would time out.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_asgi_support import WAIT, events, python, server_process, wait_until_accepting

EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples")
BIN = Path(python()[0]).parent


def free_port() -> str:
    # granian does not report the port it got for port 0, so pick one (the race is harmless
    # on a test machine: the server would fail to start, loudly).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def uvicorn_via_example() -> dict[str, Any]:
    return {"command": python(f"{EXAMPLES}/notifications.py", "--port", "0")}


def uvicorn_cli() -> dict[str, Any]:
    return {"command": [str(BIN / "uvicorn"), "--port", "0", "notifications:app"]}


def hypercorn_cli() -> dict[str, Any]:
    # -w 0: serve in this process. With worker processes hypercorn's workers get no signal,
    # only a flag from their parent; open streams then end at its graceful_timeout (3 s).
    command = [str(BIN / "hypercorn"), "-w", "0", "--bind", "127.0.0.1:0", "notifications:app"]
    return {"command": command}


def granian_cli() -> dict[str, Any]:
    port = free_port()
    command = [str(BIN / "granian"), "--interface", "asgi", "--port", port, "notifications:app"]
    return {"command": command, "ready": "Started worker", "url": f"http://127.0.0.1:{port}"}


SERVERS = [uvicorn_via_example, uvicorn_cli, hypercorn_cli, granian_cli]


@pytest.mark.parametrize("server", SERVERS, ids=lambda server: server.__name__)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_ends_open_streams_and_the_server_exits(
    server: Callable[[], dict[str, Any]], signum: signal.Signals
) -> None:
    with server_process(**server(), cwd=EXAMPLES) as process:
        wait_until_accepting(process.url)
        with (
            events(f"{process.url}/events") as own_route,
            events(f"{process.url}/hub/events?topic=other") as mounted,
        ):
            own_route.until_position()
            mounted.until_position()
            process.process.send_signal(signum)
            # Each body ends properly (its final chunk arrives), long before the test's timeout.
            assert own_route.rest() == []
            assert mounted.rest() == []
        process.process.wait(WAIT)


def test_a_generator_stream_ends_and_is_closed_on_shutdown() -> None:
    command = python(f"{EXAMPLES}/fastapi_clock.py", "--port", "0")
    with server_process(command) as server:
        with events(f"{server.url}/clock?count=1000&interval=0.01") as stream:
            stream.take(2)
            server.process.send_signal(signal.SIGTERM)
            ticks = stream.rest()
        assert server.process.wait(WAIT) == -signal.SIGTERM  # uvicorn re-raises the signal
    # Ended early: nowhere near the thousand ticks, and without the final `end` event.
    assert len(ticks) < 998 and all(event.event == "message" for event in ticks)
