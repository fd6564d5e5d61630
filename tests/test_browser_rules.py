"""Browsers as the attacker: a page on another site must not publish through the user's hub, a
rebound DNS name must not reach a hub on loopback, and CORS says exactly what it allows.

Cross-site rules are the API's, so they are checked through both entry points; the Host allowlist
is the native server's default (an ASGI app has its framework's, e.g. TrustedHostMiddleware, or
`allowed_hosts=`).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.hub_http import metric

FORM = {"topic": "t", "data": "x"}


@pytest.fixture
def open_hub(start_api: Callable[..., str]) -> str:
    return start_api("--cors-origin", "https://app.example")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["other origin", "opaque origin", "cross-site fetch", "same-site fetch", "both"],
)
def test_a_page_of_another_site_cannot_publish(open_hub: str, headers: dict[str, str]) -> None:
    reply = httpx.post(f"{open_hub}/publish", data=FORM, headers=headers)
    assert reply.status_code == 403 and "--cors-origin" in reply.json()["error"]
    assert metric(open_hub, "events_published_total") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://app.example"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ],
    ids=["no browser", "allowed origin", "same-origin fetch", "typed by the user"],
)
def test_allowed_and_non_browser_publishers_publish(open_hub: str, headers: dict[str, str]) -> None:
    assert httpx.post(f"{open_hub}/publish", data=FORM, headers=headers).status_code == 200


def test_the_hubs_own_pages_publish_same_origin(open_hub: str) -> None:
    origin = open_hub  # http://127.0.0.1:port: the console's own origin
    reply = httpx.post(f"{open_hub}/publish", data=FORM, headers={"Origin": origin})
    assert reply.status_code == 200


def test_cors_star_sends_star_and_no_credentials(start_api: Callable[..., str]) -> None:
    url = start_api("--cors-origin", "*")
    reply = httpx.get(f"{url}/healthz", headers={"Origin": "https://any.example"})
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in reply.headers


def test_cors_credentials_for_a_listed_origin(start_hub: Callable[..., object]) -> None:
    hub = start_hub("--cors-origin", "https://app.example", "--cors-credentials")
    url: str = hub.url  # type: ignore[attr-defined]
    listed = httpx.get(f"{url}/healthz", headers={"Origin": "https://app.example"})
    assert listed.headers["access-control-allow-origin"] == "https://app.example"
    assert listed.headers["access-control-allow-credentials"] == "true"
    other = httpx.get(f"{url}/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("host", "status"),
    [("evil.example", 403), ("evil.example:8000", 403), ("localhost", 200), ("127.0.0.1", 200)],
)
def test_a_hub_on_loopback_answers_loopback_names_only(
    start_hub: Callable[..., object], host: str, status: int
) -> None:
    url: str = start_hub().url  # type: ignore[attr-defined]
    reply = httpx.get(f"{url}/healthz", headers={"Host": host})
    assert reply.status_code == status
    if status == 403:
        assert "--allowed-host" in reply.json()["error"]


def test_allowed_host_names_another(start_hub: Callable[..., object]) -> None:
    url: str = start_hub("--allowed-host", "hub.example").url  # type: ignore[attr-defined]
    assert httpx.get(f"{url}/healthz", headers={"Host": "hub.example"}).status_code == 200
    assert httpx.get(f"{url}/healthz", headers={"Host": "localhost"}).status_code == 403
