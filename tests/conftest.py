"""Shared fixtures: a real `ssehub serve` process on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.hub_process import HubProcess, start_hub_process


@pytest.fixture
def start_hub() -> Iterator[Callable[..., HubProcess]]:
    """Factory: `hub = start_hub("--history", "5")`; every hub started is stopped afterwards."""
    started: list[HubProcess] = []

    def start(*args: str, command: str = "serve", script: str = "") -> HubProcess:
        hub = start_hub_process(*args, command=command, script=script)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait(timeout=10)


@pytest.fixture
def hub_url(start_hub: Callable[..., HubProcess]) -> str:
    return start_hub().url
