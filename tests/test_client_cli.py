"""`ssehub listen` and `ssehub publish`, run as real processes against real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
from support.hub_process import HubProcess

from ssehub.client import EventSource

if TYPE_CHECKING:
    from support.misbehaving_server import MisbehavingServer

pytest_plugins = ("support.misbehaving_server",)  # the `server` fixture

# `ssehub <command>`. Ctrl-C must raise KeyboardInterrupt as it does in a terminal, also when the
# test run itself was started in the background, whose children inherit SIGINT as ignored.
RUNNER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from ssehub import cli
sys.exit(cli.main())
"""


def ssehub(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", RUNNER, *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)


def ssehub_process(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# -- listen ---------------------------------------------------------------------------------------


def test_listen_json_prints_every_event_once_across_disconnects(
    server: MisbehavingServer,
) -> None:
    done = ssehub("listen", "--json", f"{server.url}/numbers?per=3&total=20&retry=1&cut=1")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [{"event": "message", "data": f"event {n}", "id": str(n)} for n in range(1, 21)]
    assert len(server.seen("/numbers")) == 8  # 7 streams, then 204
    assert done.stderr == ""


def test_listen_readable_with_topics_headers_and_last_event_id(server: MisbehavingServer) -> None:
    done = ssehub(
        "listen",
        f"{server.url}/numbers?per=3&total=6&retry=0",
        "--topic",
        "orders",
        "--topic",
        "users",
        "--last-event-id",
        "2",
        "--header",
        "Authorization: Bearer s3cret",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"[{n}] message: event {n}" for n in range(3, 7)]
    first = server.seen("/numbers")[0]
    assert first.query["topic"] == ["orders", "users"]
    assert first.headers["authorization"] == "Bearer s3cret"
    assert first.headers["last-event-id"] == "2"


def test_listen_ctrl_c_exits_0_quietly(server: MisbehavingServer) -> None:
    process = ssehub_process("listen", f"{server.url}/stall")
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == "[1] message: first\n"  # flushed per event
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert process.stderr.read() == ""
    process.stdout.close()
    process.stderr.close()
    assert process.stdin is not None
    process.stdin.close()


def test_listen_refused_exits_1_with_the_reason(server: MisbehavingServer) -> None:
    done = ssehub("listen", f"{server.url}/status/401")
    assert done.returncode == 1
    assert "401" in done.stderr and "token expired" in done.stderr
    assert done.stdout == ""


# -- publish --------------------------------------------------------------------------------------


def test_publish_dash_publishes_each_line_as_it_is_read(server: MisbehavingServer) -> None:
    process = ssehub_process("publish", "--hub", server.url, "--topic", "logs", "-")
    assert process.stdin is not None and process.stdout is not None
    for n, line in enumerate(["first line", "second line", "third line"], start=1):
        process.stdin.write(line + "\n")
        process.stdin.flush()
        # Published before stdin ends: the server has it, and the id is printed.
        server.wait_for(lambda requests, n=n: sum(r.path == "/publish" for r in requests) == n)
        assert process.stdout.readline() == f"{n}\n"
    process.stdin.close()
    assert process.wait(30) == 0
    process.stdout.close()
    assert process.stderr is not None and process.stderr.read() == ""
    process.stderr.close()
    publishes = server.seen("/publish")
    assert [json.loads(r.body) for r in publishes] == [
        {"topic": ["logs"], "data": line} for line in ["first line", "second line", "third line"]
    ]
    assert len({r.connection for r in publishes}) == 1  # one keep-alive connection


def test_publish_dash_sends_waiting_lines_together(server: MisbehavingServer) -> None:
    lines = "".join(f"line {n}\r\n" for n in range(1, 101))
    done = ssehub("publish", "--hub", server.url, "--topic", "t", stdin=lines)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(n) for n in range(1, 101)]
    sent = []
    for request in server.seen("/publish"):
        body = json.loads(request.body)
        sent.extend(body if isinstance(body, list) else [body])
    assert [item["data"] for item in sent] == [f"line {n}" for n in range(1, 101)]


def test_publish_refused_exits_1_with_the_hub_error(server: MisbehavingServer) -> None:
    done = ssehub("publish", "--hub", server.url, "--topic", "forbidden", "hello")
    assert done.returncode == 1
    assert "topic 'forbidden' is not allowed" in done.stderr
    assert done.stdout == ""


def test_publish_unreachable_hub_exits_1() -> None:
    done = ssehub("publish", "--hub", "http://127.0.0.1:9", "--topic", "t", "hello")
    assert done.returncode == 1
    assert "cannot publish" in done.stderr


# -- against the real hub -------------------------------------------------------------------------


def test_publish_to_the_hub_reaches_a_listener(start_hub: Callable[..., HubProcess]) -> None:
    hub = start_hub()
    [before] = httpx.post(f"{hub.url}/publish", json={"topic": "b", "data": "0"}).json()["ids"]
    done = ssehub("publish", "--hub", hub.url, "--topic", "a", "--topic", "b", "--event", "e", "hi")
    assert done.returncode == 0, done.stderr
    # Listening from the event before: the hub replays what the command published.
    url = f"{hub.url}/events?topic=b"
    with EventSource(url, last_event_id=before) as source:
        event = next(iter(source))
    assert (event.event, event.data, event.id) == ("e", "hi", done.stdout.strip())


def test_listen_shows_each_events_topics(start_hub: Callable[..., HubProcess]) -> None:
    """The hub's `topic:` lines, which decoders ignore, are shown beside each event."""
    hub = start_hub()
    [before] = httpx.post(f"{hub.url}/publish", json={"topic": "a", "data": "0"}).json()["ids"]
    for topics, data in ((["a"], "one"), (["b"], "two"), (["a", "b"], "both")):
        reply = httpx.post(f"{hub.url}/publish", json={"topic": topics, "data": data})
        assert reply.status_code == 200
    url = f"{hub.url}/events?topic=a&topic=b"
    process = ssehub_process("listen", "--last-event-id", before, url)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().split("] ", 1)[1] for _ in range(3)]
    finally:
        process.kill()
        process.wait()
    assert lines == ["a message: one\n", "b message: two\n", "a,b message: both\n"]


def test_publish_refused_by_the_hub(start_hub: Callable[..., HubProcess]) -> None:
    hub = start_hub()
    done = ssehub("publish", "--hub", hub.url, "--topic", "has space", "hello")
    assert done.returncode == 1
    assert "topic 'has space' is invalid" in done.stderr
    assert httpx.get(f"{hub.url}/healthz").status_code == 200


def test_token_mints_and_listen_and_publish_send_it(start_hub: Callable[..., HubProcess]) -> None:
    secret = "a-secret-of-at-least-32-bytes-for-hs256!"
    url = start_hub("--jwt-key", secret).url
    minted = ssehub("token", "--key", secret, "--publish", "*", "--subscribe", "t")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    refused = ssehub("publish", "--hub", url, "--topic", "t", "no token")
    assert refused.returncode == 1 and "no token" in refused.stderr
    first = ssehub("publish", "--hub", url, "--topic", "t", "--token", token, "one")
    assert first.returncode == 0, first.stderr
    start = first.stdout.strip()
    second = ssehub("publish", "--hub", url, "--topic", "t", "--token", token, "two")
    assert second.returncode == 0, second.stderr
    env_token = {**os.environ, "SSEHUB_TOKEN": token}
    listen = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNNER,
            "listen",
            f"{url}/events",
            "--topic",
            "t",
            "--last-event-id",
            start,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_token,
    )
    try:
        assert listen.stdout is not None
        assert "two" in listen.stdout.readline()
    finally:
        listen.kill()
        listen.wait()
