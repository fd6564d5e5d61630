"""Who may publish and who may read, over real HTTP, through both entry points (`ssehub serve`
and `hub.asgi_app()` under uvicorn): tokens from the header, the query and the cookie; refusals
of every kind of bad token; publish grants per topic and per batch; private events live and on
replay; streams that end when their token expires; the C fast path never publishing what the
general path refuses.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hub_http import metric

from ssehub import Hub
from ssehub.auth import mint_token
from ssehub.wire import Decoder, Event

SECRET = "a-secret-of-at-least-32-bytes-for-hs256!"
ORIGIN = "https://app.example"


def token(
    *, publish: tuple[str, ...] = (), subscribe: tuple[str, ...] = (), ttl: float = 600
) -> str:
    """A token that expires `ttl` seconds from now (a negative ttl: that long ago)."""
    now = time.time()
    issued = now if ttl > 0 else now + 2 * ttl
    return mint_token(SECRET, publish=publish, subscribe=subscribe, ttl=abs(ttl), now=issued)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def publish(url: str, headers: dict[str, str] | None = None, **fields: object) -> httpx.Response:
    return httpx.post(f"{url}/publish", json=fields, headers=headers or {})


@pytest.fixture
def hub(start_api: Callable[..., str]) -> str:
    """A hub with a key and anonymous readers allowed."""
    return start_api("--jwt-key", SECRET, "--allow-anonymous", "--cors-origin", ORIGIN)


@contextmanager
def reading(
    url: str, *topics: str, headers: dict[str, str] | None = None, last_event_id: str = ""
) -> Iterator[Callable[[int], list[Event]]]:
    """An open stream; the callable reads the next n events (after the opening position)."""
    params = [("topic", topic) for topic in topics]
    sent = dict(headers or {})
    if last_event_id:
        sent["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{url}/events", params=params, headers=sent) as response,
    ):
        assert response.status_code == 200, response.read()
        chunks = response.iter_raw()
        decoder = Decoder(last_event_id)
        ready: list[Event] = []
        while not last_event_id and decoder.last_event_id == "":
            ready += decoder.feed(next(chunks))

        def take(count: int) -> list[Event]:
            while len(ready) < count:
                ready.extend(decoder.feed(next(chunks)))
            return [ready.pop(0) for _ in range(count)]

        yield take


# -- publishing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "no token"),
        (bearer("not-a-jwt"), "malformed"),
        (
            bearer(mint_token("another-secret-of-at-least-32-bytes!", publish=["*"], ttl=60)),
            "signature",
        ),
        (bearer(token(publish=("*",), ttl=-60)), "expired"),
    ],
    ids=["none", "garbage", "wrong key", "expired"],
)
def test_a_publish_without_a_valid_token_gets_401_and_publishes_nothing(
    hub: str, headers: dict[str, str], says: str
) -> None:
    reply = publish(hub, headers, topic="t", data="x")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert says in reply.json()["error"]
    assert SECRET not in reply.text
    assert metric(hub, "events_published_total") == 0


def test_alg_none_is_refused(hub: str) -> None:
    unsigned = jwt.encode({"mercure": {"publish": ["*"]}}, key="", algorithm="none")
    reply = publish(hub, bearer(unsigned), topic="t", data="x")
    assert reply.status_code == 401 and "algorithm" in reply.json()["error"]


def test_a_token_must_grant_every_topic_of_every_event_or_nothing_is_published(hub: str) -> None:
    grant_a = bearer(token(publish=("a",)))
    assert publish(hub, grant_a, topic="a", data="ok").status_code == 200
    denied = publish(hub, grant_a, topic=["a", "b"], data="no")
    assert denied.status_code == 403 and "'b'" in denied.json()["error"]
    batch = [{"topic": "a", "data": "1"}, {"topic": "b", "data": "2"}]
    assert httpx.post(f"{hub}/publish", json=batch, headers=grant_a).status_code == 403
    assert metric(hub, "events_published_total") == 1


def test_uri_template_selectors(hub: str) -> None:
    grant = bearer(token(publish=("https://example.com/users/{id}",)))
    ok = publish(hub, grant, topic="https://example.com/users/7", data="x")
    assert ok.status_code == 200
    deeper = publish(hub, grant, topic="https://example.com/users/7/friends", data="x")
    assert deeper.status_code == 403
    plain = bearer(token(publish=("user.{id}",)))
    assert publish(hub, plain, topic="user.42", data="x").status_code == 200
    assert publish(hub, plain, topic="admin.42", data="x").status_code == 403


def test_the_token_may_come_from_the_query_or_a_cookie_but_a_cookie_needs_an_allowed_origin(
    hub: str,
) -> None:
    value = token(publish=("*",))
    by_query = httpx.post(f"{hub}/publish?authorization={value}", json={"topic": "t"})
    assert by_query.status_code == 200
    cookie = {"Cookie": f"mercureAuthorization={value}"}
    cross_site = publish(hub, {**cookie, "Origin": "https://evil.example"}, topic="t")
    assert cross_site.status_code == 403 and "origin" in cross_site.json()["error"]
    no_origin = publish(hub, cookie, topic="t")
    assert no_origin.status_code == 403
    same_site = publish(hub, {**cookie, "Origin": ORIGIN}, topic="t")
    assert same_site.status_code == 200
    by_referer = publish(hub, {**cookie, "Referer": f"{ORIGIN}/page"}, topic="t")
    assert by_referer.status_code == 200
    assert metric(hub, "events_published_total") == 3


# -- reading ------------------------------------------------------------------------------------


def test_without_allow_anonymous_reading_needs_a_valid_token(start_api: Callable[..., str]) -> None:
    url = start_api("--jwt-key", SECRET)
    anonymous = httpx.get(f"{url}/events?topic=t")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    garbage = httpx.get(f"{url}/events?topic=t&authorization=garbage")
    assert garbage.status_code == 401
    with reading(url, "t", headers=bearer(token(subscribe=("t",)))):
        pass


def test_private_events_reach_only_granted_subscribers_live_and_on_replay(hub: str) -> None:
    publisher = bearer(token(publish=("*",)))
    start = publish(hub, publisher, topic="other", data="position").json()["ids"][0]
    granted = bearer(token(subscribe=("user.{id}",)))
    not_granted = bearer(token(subscribe=("user.1",)))
    with (
        reading(hub, "user.42", headers=granted) as granted_reads,
        reading(hub, "user.42", headers=not_granted) as other_reads,
        reading(hub, "user.42") as anonymous_reads,
    ):
        publish(hub, publisher, topic="user.42", data="secret", private=True)
        publish(hub, publisher, topic="user.42", data="public")
        assert [e.data for e in granted_reads(2)] == ["secret", "public"]
        assert [e.data for e in other_reads(1)] == ["public"]
        assert [e.data for e in anonymous_reads(1)] == ["public"]
    form = httpx.post(
        f"{hub}/publish",
        data={"topic": "user.42", "data": "form-secret", "private": "on"},
        headers=publisher,
    )
    assert form.status_code == 200
    publish(hub, publisher, topic="user.42", data="end")
    for headers, expected in (
        (granted, ["secret", "public", "form-secret", "end"]),
        (not_granted, ["public", "end"]),
        ({}, ["public", "end"]),
    ):
        with reading(hub, "user.42", headers=headers, last_event_id=start) as replay:
            assert [e.data for e in replay(len(expected))] == expected


def test_a_stream_ends_when_its_token_expires(hub: str) -> None:
    short = mint_token(SECRET, subscribe=("t",), ttl=1)
    with httpx.stream("GET", f"{hub}/events?topic=t", headers=bearer(short), timeout=30) as r:
        assert r.status_code == 200
        received = b"".join(r.iter_raw())  # returns once the hub ends the stream
    assert received.startswith(b": ssehub\n")


# -- the C fast path decides as the general path does --------------------------------------------


def raw_publish(url: str, headers: list[tuple[str, str]], body: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    request = (
        f"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


TOKENS = {
    "none": None,
    "garbage": "garbage",
    "expired": token(publish=("*",), ttl=-60),
    "wrong key": mint_token("another-secret-of-at-least-32-bytes!", publish=["*"], ttl=60),
    "grants t": token(publish=("t",)),
    "grants all": token(publish=("*",)),
    "grants nothing": token(subscribe=("*",)),
}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(which=st.sampled_from(sorted(TOKENS)), topic=st.sampled_from(["t", "u"]))
def test_the_fast_path_never_publishes_what_the_general_path_refuses(
    hub: str, which: str, topic: str
) -> None:
    value = TOKENS[which]
    auth = [("Authorization", f"Bearer {value}")] if value else []
    plain = raw_publish(hub, auth, f"topic={topic}&data=x".encode())  # the fast path's shape
    general = raw_publish(
        hub,
        [*auth, ("Content-Type", "application/json")],
        json.dumps({"topic": topic, "data": "x"}).encode(),
    )
    assert plain == general
    if value is None or which in ("garbage", "expired", "wrong key"):
        assert plain == 401
    elif which == "grants all" or (which == "grants t" and topic == "t"):
        assert plain == 200
    else:
        assert plain == 403


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_no_token_string_gets_a_500_or_is_accepted(hub: str, value: str) -> None:
    reply = publish(hub, bearer(value), topic="t", data="x")
    assert reply.status_code == 401, reply.text
    stream = httpx.get(f"{hub}/events", params={"topic": "t", "authorization": value})
    assert stream.status_code == 401


# -- keys ---------------------------------------------------------------------------------------


def test_algorithm_confusion_is_refused(start_api: Callable[..., str], tmp_path: object) -> None:
    from pathlib import Path

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = Path(str(tmp_path)) / "public.pem"
    path.write_bytes(public_pem)
    url = start_api("--jwt-key", f"@{path}", "--jwt-algorithm", "RS256")
    claims = {"mercure": {"publish": ["*"]}, "exp": int(time.time()) + 60}
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    good = jwt.encode(claims, private_pem, algorithm="RS256")
    assert publish(url, bearer(good), topic="t").status_code == 200
    # An HS256 token whose HMAC secret is the public key's PEM text: the classic confusion.
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    forged = f"{header}.{payload}.{signature}"
    refused = publish(url, bearer(forged), topic="t")
    assert refused.status_code == 401 and "algorithm" in refused.json()["error"]


def test_a_bad_key_stops_serve_with_one_line(tmp_path: object) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ssehub", "serve", "--port", "0", "--jwt-key", "short"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "short" not in result.stderr


# -- the default: no key ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_without_a_key_only_loopback_may_publish() -> None:
    """The peer address decides. A remote peer cannot be made on loopback, so the ASGI app is
    driven in-process with a scope whose client is a documentation address (RFC 5737)."""
    hub = Hub()
    app = hub.asgi_app()
    async with hub:
        remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=remote, base_url="http://hub") as client:
            refused = await client.post("/publish", json={"topic": "t", "data": "x"})
            assert refused.status_code == 403 and "--jwt-key" in refused.json()["error"]
            metrics = await client.get("/metrics")
            assert metrics.status_code == 403
        local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=local, base_url="http://hub") as client:
            assert (await client.post("/publish", json={"topic": "t"})).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
        assert hub.stats.published == 1


@pytest.mark.anyio
async def test_the_metrics_token_opens_metrics_to_a_remote_scraper() -> None:
    hub = Hub()
    app = hub.asgi_app(metrics_token="scrape-me")
    async with hub:
        remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=remote, base_url="http://hub") as client:
            assert (await client.get("/metrics")).status_code == 403
            wrong = await client.get("/metrics", headers=bearer("wrong"))
            assert wrong.status_code == 403
            right = await client.get("/metrics", headers=bearer("scrape-me"))
            assert right.status_code == 200 and "ssehub_events_published_total" in right.text


@pytest.mark.anyio
async def test_an_app_can_hand_in_its_own_decision() -> None:
    from ssehub.auth import AuthError, Grants

    def authorize(request: object) -> Grants:
        user = getattr(request, "headers", {}).get("x-user")
        if user is None:
            raise AuthError(401, "log in first", challenge="Bearer")
        return Grants(publish=(f"user.{user}",), subscribe=(f"user.{user}",))

    hub = Hub()
    app = hub.asgi_app(authorize=authorize)
    async with hub:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            anonymous = await client.post("/publish", json={"topic": "user.7"})
            assert anonymous.status_code == 401 and anonymous.json() == {"error": "log in first"}
            mine = await client.post("/publish", json={"topic": "user.7"}, headers={"x-user": "7"})
            assert mine.status_code == 200
            theirs = await client.post(
                "/publish", json={"topic": "user.8"}, headers={"x-user": "7"}
            )
            assert theirs.status_code == 403
