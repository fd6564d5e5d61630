"""Bounded memory, on both entry points: topics are bounded and forgotten when their history
expires, a subscription or an event names a bounded number of topics, and /metrics does not grow
with the number of topics unless per-topic series are asked for."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from support.hub_http import metric, publish

from ssehub.model import MAX_TOPICS


def test_a_publish_past_max_topics_gets_503_and_publishes_nothing(
    start_api: Callable[..., str],
) -> None:
    url = start_api("--max-topics", "3")
    for topic in ("a", "b", "c"):
        assert publish(url, topic=topic, data="x").status_code == 200
    full = publish(url, topic=["a", "d"], data="x")
    assert full.status_code == 503 and "--max-topics" in full.json()["error"]
    form = httpx.post(f"{url}/publish", data={"topic": "e", "data": "x"})  # the fast path too
    assert form.status_code == 503
    assert publish(url, topic="a", data="known topics still take events").status_code == 200
    assert metric(url, "events_published_total") == 4
    assert metric(url, "topics") == 3


def test_expired_topics_are_forgotten_in_the_background(start_api: Callable[..., str]) -> None:
    url = start_api("--history-ttl", "0.5")
    for n in range(50):
        assert publish(url, topic=f"t{n}", data="x").status_code == 200
    assert metric(url, "topics") == 50
    deadline = time.monotonic() + 30  # the sweep runs every few seconds
    while metric(url, "topics") > 0:
        assert time.monotonic() < deadline, "expired topics were never forgotten"
        time.sleep(0.2)  # polling a condition that only time brings about
    assert metric(url, "history_events") == 0
    # A resume from before the forgotten history is a reset, never a silent gap.
    with httpx.stream(
        "GET", f"{url}/events?topic=t7", headers={"Last-Event-ID": "1"}, timeout=10
    ) as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if b"event: reset" in seen:
                break
    assert b"event: reset" in seen


def test_at_most_max_topics_per_subscription_and_event(start_api: Callable[..., str]) -> None:
    url = start_api()
    many = [("topic", f"t{n}") for n in range(MAX_TOPICS + 1)]
    assert httpx.get(f"{url}/events", params=many).status_code == 400
    reply = publish(url, topic=[f"t{n}" for n in range(MAX_TOPICS + 1)], data="x")
    assert reply.status_code == 400 and "at most" in reply.json()["error"]


def test_per_topic_series_only_for_the_largest_topics(start_api: Callable[..., str]) -> None:
    url = start_api("--metrics-topics", "2")
    for topic, count in (("big", 3), ("mid", 2), ("small", 1)):
        for _ in range(count):
            publish(url, topic=topic, data="x")
    text = httpx.get(f"{url}/metrics").text
    assert 'ssehub_topic_history_events{topic="big"} 3' in text
    assert 'ssehub_topic_history_events{topic="mid"} 2' in text
    assert 'topic="small"' not in text


def test_a_proxy_on_this_machine_does_not_make_its_clients_loopback_publishers(
    start_api: Callable[..., str],
) -> None:
    url = start_api()
    remote = {"X-Forwarded-For": "203.0.113.9"}  # what nginx adds for a remote client
    refused = httpx.post(f"{url}/publish", data={"topic": "t"}, headers=remote)
    assert refused.status_code == 403 and "--jwt-key" in refused.json()["error"]
    local = {"X-Forwarded-For": "127.0.0.1"}
    assert httpx.post(f"{url}/publish", data={"topic": "t"}, headers=local).status_code == 200
    untrusted = {"X-Real-IP": "127.0.0.1"}  # a forwarding header but no believed chain
    assert httpx.post(f"{url}/publish", data={"topic": "t"}, headers=untrusted).status_code == 403
