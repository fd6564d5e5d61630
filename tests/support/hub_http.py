"""Talking to a hub over HTTP in tests: publish, read metrics, read a stream event by event."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ssehub.wire import Decoder, Event

__all__ = ["Stream", "metric", "open_position", "publish", "stream"]


def publish(url: str, **fields: object) -> httpx.Response:
    return httpx.post(f"{url}/publish", json=fields)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^ssehub_{name} (\S+)$", text, re.MULTILINE)
    assert match, f"no metric {name} in:\n{text}"
    return float(match.group(1))


class Stream:
    """An open /events response and a decoder over it."""

    def __init__(self, response: httpx.Response, decoder: Decoder) -> None:
        self.response = response
        self.decoder = decoder
        self._chunks = response.iter_raw()
        self._ready: list[Event] = []

    def next(self) -> Event:
        while not self._ready:
            self._ready.extend(self.decoder.feed(next(self._chunks)))
        return self._ready.pop(0)

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]


@contextmanager
def stream(url: str, *topics: str, last_event_id: str | None = None) -> Iterator[Stream]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    params = [("topic", topic) for topic in topics]
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{url}/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        yield Stream(response, Decoder(last_event_id or ""))


def open_position(s: Stream) -> str:
    """Read the stream's opening until the hub has told us where it stands."""
    while s.decoder.last_event_id == "":
        assert s.decoder.feed(next(s._chunks)) == []
    return s.decoder.last_event_id
