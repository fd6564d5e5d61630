"""The same topic bounds on every backend: `--max-topics` refuses a publish that would add a topic
past it (503, nothing stored); a topic whose history has expired is forgotten, which makes room
again; and a resume from before a forgotten topic's history is a reset, also once the topic has
new events (never the new events alone, which would hide a gap)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.hub_http import metric, publish, stream
from support.hub_process import HubProcess
from support.redis_server import REDIS_SERVER, RedisServer

DEADLINE = 30.0  # seconds: memory forgets in its background sweep, every few seconds


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
    else:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (make test installs it)")
        with RedisServer() as server:
            yield server.url


def test_max_topics_refuses_new_topics_until_expired_ones_are_forgotten(
    backend: str, start_hub: Callable[..., HubProcess]
) -> None:
    url = start_hub("--backend", backend, "--max-topics", "2", "--history-ttl", "1").url
    [before] = publish(url, topic="tick", data="0").json()["ids"]
    assert publish(url, topic="a", data="a1").status_code == 200

    full = publish(url, topic=["tick", "b"], data="refused whole")
    assert full.status_code == 503, full.text
    assert "--max-topics 2" in full.json()["error"]
    assert publish(url, topic="tick", data="known topics still take events").status_code == 200
    assert metric(url, "events_published_total") == 3
    assert (metric(url, "topics"), metric(url, "history_events")) == (2, 3)

    # `a` expires. Publishing on `tick` keeps it alive and drives the stores that expire
    # history as they write (SQLite, Redis); memory forgets in its background sweep.
    deadline = time.monotonic() + DEADLINE
    while metric(url, "topics") > 1:
        assert time.monotonic() < deadline, "the expired topic was never forgotten"
        assert publish(url, topic="tick", data="tick").status_code == 200
        time.sleep(0.2)  # polling a condition that only time brings about

    # Room again, for `a` once more: a resume from before its forgotten history is a reset,
    # not just `a2`.
    assert publish(url, topic="a", data="a2").status_code == 200
    assert publish(url, topic="b", data="x").status_code == 503
    assert metric(url, "topics") == 2
    with stream(url, "a", last_event_id=before) as events:
        first = events.next()
    assert first.event == "reset", first
