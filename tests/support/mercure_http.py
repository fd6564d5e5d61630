"""Talking Mercure to a hub in tests: publish an update, open a subscription."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import httpx

from ssehub.wire import Decoder
from support.hub_http import Stream

__all__ = ["HUB", "mercure_publish", "mercure_stream"]

HUB = "/.well-known/mercure"


def mercure_publish(
    url: str, fields: list[tuple[str, str]], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST an update as a form, `topic` repeatable as in Mercure."""
    form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return httpx.post(f"{url}{HUB}", content=urlencode(fields), headers=form)


@contextmanager
def mercure_stream(
    url: str,
    *selectors: str,
    headers: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> Iterator[Stream]:
    """A subscription to `/.well-known/mercure`; `stream.response` has the answer's headers."""
    query = [("topic", selector) for selector in selectors] + (params or [])
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{url}{HUB}", params=query, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        yield Stream(response, Decoder())
