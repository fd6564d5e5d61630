"""`ssehub serve`'s logs: the start-up line, the access log (text and JSON), read from a real
hub's stderr while real clients talk to it over loopback."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub.server import ServerConfig
from ssehub.server._app import announce

# 127.0.0.1 "GET /healthz" 200 123 0.000456
ACCESS_LINE = re.compile(r'ssehub\.access: (\S+) "(\S+) (\S+)" (\d+) (\d+) (\d+\.\d{6})$')


def next_access(hub: HubProcess) -> tuple[str, str, str, int, int, float]:
    """The next access-log line the hub writes, as its fields (waits for it, up to 10 s)."""
    while True:
        line = hub.log.get(timeout=10)
        assert line is not None, "the hub exited"
        match = ACCESS_LINE.search(line.rstrip("\n"))
        if match:
            client, method, path, status, sent, duration = match.groups()
            return client, method, path, int(status), int(sent), float(duration)


def rest_of_log(hub: HubProcess) -> list[str]:
    """Every line the hub writes until it exits (SIGTERM)."""
    assert hub.terminate() == 0
    lines = []
    while (line := hub.log.get(timeout=10)) is not None:
        lines.append(line)
    return lines


def test_the_access_log_has_a_line_per_request_and_per_stream_at_its_end(
    start_hub: Callable[..., HubProcess],
) -> None:
    hub = start_hub("--access-log")
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        answer = client.post("/publish", data={"topic": "t", "data": "fast path"})
        assert answer.status_code == 200
        assert next_access(hub)[:4] == ("127.0.0.1", "POST", "/publish", 200)

        answer = client.post("/publish", json={"topic": "t", "data": "general path"})
        assert answer.status_code == 200
        *_, sent, duration = next_access(hub)
        assert sent > len(answer.content) and duration >= 0

        assert client.get("/nope").status_code == 404
        assert next_access(hub)[1:4] == ("GET", "/nope", 404)

        # The query is left out of the log: EventSource sends its token there.
        query = {"topic": "t", "authorization": "a.secret.token"}
        with client.stream("GET", "/events", params=query) as stream:
            chunks = stream.iter_bytes()
            received = next(chunks)
            while not received.endswith(b"\n\n") or b"\nid: " not in received:
                received += next(chunks)  # the opening, then the latest event's id: it is live
            client.post("/publish", data={"topic": "t", "data": "live"})
            assert next_access(hub)[1:4] == ("POST", "/publish", 200)
            while not received.endswith(b"data: live\n\n"):
                received += next(chunks)
        client_address, method, path, status, sent, duration = next_access(hub)
    assert (client_address, method, path, status) == ("127.0.0.1", "GET", "/events", 200)
    assert sent > len(received)  # the head, the opening and the event
    assert duration > 0
    assert not any("a.secret.token" in line for line in rest_of_log(hub))


def test_json_logs_are_one_object_per_line(start_hub: Callable[..., HubProcess]) -> None:
    hub = start_hub("--log-format", "json", "--access-log")
    started = json.loads(hub.log.get(timeout=10) or "")
    assert started["level"] == "INFO"
    assert started["logger"] == "ssehub.server"
    assert started["message"].startswith(f"ssehub serving on {hub.url}/ ")
    assert httpx.get(f"{hub.url}/healthz", timeout=10).status_code == 200
    records = [json.loads(line) for line in rest_of_log(hub)]
    access = [record for record in records if record["logger"] == "ssehub.access"]
    assert len(access) == 1
    record = access[0]
    assert record["client"] == "127.0.0.1"
    assert (record["method"], record["path"], record["status"]) == ("GET", "/healthz", 200)
    assert isinstance(record["bytes"], int) and record["bytes"] > 0
    assert isinstance(record["duration"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])


def test_there_is_no_access_log_by_default(start_hub: Callable[..., HubProcess]) -> None:
    hub = start_hub()
    assert httpx.get(f"{hub.url}/healthz", timeout=10).status_code == 200
    assert not any("ssehub.access" in line for line in rest_of_log(hub))


def test_the_start_up_line_lists_the_pages_and_the_backend(
    start_hub: Callable[..., HubProcess], tmp_path: object
) -> None:
    hub = start_hub("--demo", "--backend", f"sqlite:///{tmp_path}/hub.db")
    line = hub.log.get(timeout=10) or ""
    url = hub.url
    assert (
        f"ssehub serving on {url}/ (console {url}/, demos {url}/demos/, metrics {url}/metrics, "
        f"backend sqlite:///{tmp_path}/hub.db)"
    ) in line
    assert httpx.get(f"{url}/demos/", timeout=10).status_code == 200


def test_the_start_up_line_hides_a_backend_password(caplog: pytest.LogCaptureFixture) -> None:
    config = ServerConfig(backend="redis://user:s3cret@redis.example:6379/0")
    with caplog.at_level(logging.INFO, logger="ssehub.server"):
        announce(config, "::1", 8000)
    assert caplog.messages[0] == (
        "ssehub serving on http://[::1]:8000/ (console http://[::1]:8000/, "
        "metrics http://[::1]:8000/metrics, backend redis://user:***@redis.example:6379/0)"
    )
    assert "s3cret" not in caplog.text


def test_a_stream_gives_back_its_per_address_slot_when_it_ends(
    start_hub: Callable[..., HubProcess],
) -> None:
    """Loopback is not a trusted proxy here, so its streams count against
    --max-client-connections; ended streams must not go on counting."""
    hub = start_hub("--trusted-proxy", "192.0.2.9", "--max-client-connections", "2", "--access-log")
    url = f"{hub.url}/events?topic=t"
    for _ in range(2):  # twice the limit, one after the other
        with (
            httpx.Client(timeout=10) as first,
            httpx.Client(timeout=10) as second,
            first.stream("GET", url) as one,
            second.stream("GET", url) as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            refused = httpx.get(url, timeout=10)
            assert refused.status_code == 503
            assert "--max-client-connections 2" in refused.json()["error"]
        ended = {next_access(hub)[1:4] for _ in range(3)}  # the refusal, then both streams
        assert ended == {("GET", "/events", 200), ("-", "-", 503)}


def test_workers_announce_once_in_the_log_format(start_hub: Callable[..., HubProcess]) -> None:
    backend = f"redis://127.0.0.1:6379/0?prefix=test-logging-{uuid.uuid4().hex}"
    hub = start_hub("--workers", "2", "--backend", backend, "--log-format", "json")
    started = json.loads(hub.log.get(timeout=10) or "")
    assert started["message"].startswith(f"ssehub serving on {hub.url}/ (2 workers, console ")
    records = [json.loads(line) for line in rest_of_log(hub)]  # every line is JSON
    assert not any("serving on" in record["message"] for record in records)


def test_the_log_level_keeps_warnings_and_drops_info() -> None:
    """More connections than the open-file limit can hold: a warning before listening. At
    --log-level warning it is written, and the info records (start-up, access) are not."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to pass")
    with socket.socket() as probe:  # a free port: nothing announces this hub's
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "ssehub", "serve", "--port", str(port), "--access-log"]
    argv += ["--log-level", "warning", "--max-connections", str(hard + 1)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        assert " WARNING ssehub.server: the open-file limit " in process.stderr.readline()
        # Connecting is retried until the hub listens: an answer means it is serving.
        with httpx.Client(transport=httpx.HTTPTransport(retries=20), timeout=10) as client:
            assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
    assert process.returncode == 0
    assert rest == ""  # neither the start-up line nor the access line
