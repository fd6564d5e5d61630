"""Shared fixtures: a real `ssehub serve` process on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.hub_process import HubProcess, start_hub_process


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (`pytest.mark.anyio`) run on asyncio, as the hub does."""
    return "asyncio"


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


ASGI_HUB = str(Path(__file__).parent / "support" / "asgi_hub.py")


@pytest.fixture(params=["serve", "asgi"])
def start_api(
    request: pytest.FixtureRequest, start_hub: Callable[..., HubProcess]
) -> Callable[..., str]:
    """Factory: the base URL of a hub started with these options, through one entry point:
    `ssehub serve` (the native server), or `hub.asgi_app()` under uvicorn."""
    script = ASGI_HUB if request.param == "asgi" else ""

    def start(*args: str) -> str:
        return start_hub(*args, script=script).url

    return start
