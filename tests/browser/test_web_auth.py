"""ssehub.js and the console against a hub with `--jwt-key`: the `token` option on both
transports, private events, a token function called again at every reconnection, the
`mercureAuthorization` cookie, and the console's token field."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from support.hub_process import HubProcess
from support.tcp_proxy import CuttableProxy

from ssehub.auth import mint_token

from .conftest import Pages, screenshot

SECRET = "ssehub-browser-tests-hmac-secret-" + "k" * 32  # HS256 needs at least 32 bytes
RETRY = "250"  # the hub's reconnect hint, in ms: keeps reconnect tests quick
TRANSPORTS = ["eventsource", "fetch"]

StartHub = Callable[..., HubProcess]


def token(
    *,
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
    ttl: float = 600,
    payload: Any = None,
) -> str:
    return mint_token(
        SECRET, publish=publish or [], subscribe=subscribe or [], ttl=ttl, payload=payload
    )


PUBLISHER = token(publish=["*"])


def publish(hub: HubProcess, topic: str, data: str, *, private: bool = False) -> str:
    """Publish from Python with a publisher's token; the event's id."""
    body: dict[str, object] = {"topic": topic, "data": data}
    if private:
        body["private"] = True
    response = httpx.post(
        f"{hub.url}/publish",
        json=body,
        headers={"Authorization": f"Bearer {PUBLISHER}"},
        timeout=5,
    )
    response.raise_for_status()
    event_id: str = response.json()["ids"][0]
    return event_id


def port_of(hub: HubProcess) -> int:
    return int(hub.url.rsplit(":", 1)[1])


@pytest.fixture
def auth_hub(start_hub: StartHub) -> Callable[..., HubProcess]:
    """Factory: `ssehub serve --jwt-key SECRET` (plus options), with a quick retry hint."""

    def start(*args: str) -> HubProcess:
        return start_hub("--jwt-key", SECRET, "--retry", RETRY, "--heartbeat", "5", *args)

    return start


@pytest.fixture
def proxy_to() -> Iterator[Callable[[HubProcess], CuttableProxy]]:
    """Factory: a cuttable TCP proxy in front of a hub (load pages from `proxy.url`)."""
    proxies: list[CuttableProxy] = []

    def start(hub: HubProcess) -> CuttableProxy:
        proxy = CuttableProxy("127.0.0.1", port_of(hub)).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


# What a test page runs: `watch(name, topics, hubOptions, subscribeOptions)` subscribes through
# ssehub.js and records into `runs[name]` every event (data, id), every state and the latest
# state's info. `hubOptions.tokenFunction: true` makes the token a function that counts its calls
# in `runs[name].calls` and asks the test for a token (`mintToken`, exposed by the test).
WATCH = """() => {
    window.runs = {};
    window.subs = {};
    window.watch = (name, topics, hubOptions, subscribeOptions) => {
        const run = runs[name] = {events: [], states: [], info: {}, calls: 0};
        hubOptions = Object.assign({}, hubOptions);
        if (hubOptions.tokenFunction) {
            delete hubOptions.tokenFunction;
            hubOptions.token = () => { run.calls += 1; return window.mintToken(); };
        }
        const sub = subs[name] = new SSEHub.Hub(hubOptions).subscribe(topics, subscribeOptions);
        sub.onEvent("message", (e) => run.events.push([e.data, e.id]));
        sub.onState((state, info) => {
            run.states.push(state);
            run.info = Object.assign({}, info);
        });
        return true;
    };
}"""


def client_page(pages: Pages, base_url: str) -> Page:
    """A page of the hub (the console, not connected) with ssehub.js and `watch` loaded."""
    page = pages.open(f"{base_url}/?connect=0")
    page.wait_for_function("() => window.SSEHub && SSEHub.version")
    page.evaluate(WATCH)
    return page


def watch(
    page: Page,
    name: str,
    topics: list[str],
    hub_options: dict[str, Any] | None = None,
    **subscribe_options: Any,
) -> None:
    page.evaluate(
        "([name, topics, hub, sub]) => watch(name, topics, hub, sub)",
        [name, topics, hub_options or {}, subscribe_options],
    )


def wait_state(page: Page, name: str, state: str) -> None:
    page.wait_for_function(
        "([name, state]) => runs[name].states.at(-1) === state", arg=[name, state]
    )


def wait_events(page: Page, name: str, count: int) -> list[list[str]]:
    page.wait_for_function(
        "([name, count]) => runs[name].events.length >= count", arg=[name, count]
    )
    events: list[list[str]] = page.evaluate("(name) => runs[name].events", name)
    return events


# -- ssehub.js ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_token_opens_a_hub_that_requires_one(
    auth_hub: Callable[..., HubProcess],
    proxy_to: Callable[[HubProcess], CuttableProxy],
    pages: Pages,
    transport: str,
) -> None:
    """EventSource sends the token as the `authorization` query parameter, fetch as an
    `Authorization: Bearer` header; without one the hub answers 401 and nothing is delivered."""
    hub = auth_hub()
    proxy = proxy_to(hub)
    reader = token(subscribe=["orders"])
    page = client_page(pages, proxy.url)
    watch(page, "with", ["orders"], {"token": reader}, transport=transport)
    watch(page, "without", ["orders"], {}, transport=transport)
    wait_state(page, "with", "open")
    wait_state(page, "without", "closed")
    event_id = publish(hub, "orders", "for token holders")
    assert wait_events(page, "with", 1) == [["for token holders", event_id]]

    refused = page.evaluate("runs.without")
    assert refused["events"] == []
    assert refused["states"] == ["connecting", "closed"]
    if transport == "fetch":
        # The hub's own words reach the page.
        answer = httpx.get(f"{hub.url}/events?topic=orders", timeout=5)
        assert answer.status_code == 401
        assert refused["info"]["status"] == 401
        assert refused["info"]["message"] == answer.json()["error"]
        assert refused["info"]["message"].startswith("no token")
    else:
        assert refused["info"]["reason"] == "EventSource failed"  # EventSource hides the status

    [sent] = [r for r in proxy.seen("/events") if reader in r.path + str(r.headers)]
    [unsent] = [r for r in proxy.seen("/events") if r is not sent]
    if transport == "eventsource":
        assert sent.path == f"/events?topic=orders&authorization={reader}"
        assert "authorization" not in sent.headers
    else:
        assert sent.headers["authorization"] == f"Bearer {reader}"
        assert "authorization" not in sent.path
    assert "authorization" not in unsent.headers and "authorization" not in unsent.path
    page.evaluate("Object.values(subs).forEach((s) => s.close())")


def test_auto_sends_a_token_in_a_header_and_publish_sends_it_too(
    auth_hub: Callable[..., HubProcess],
    proxy_to: Callable[[HubProcess], CuttableProxy],
    pages: Pages,
) -> None:
    """A one-topic subscription with a token picks fetch under "auto" (the token stays out of
    the URL); `hub.publish` sends the token and `private: true`, and rejects with the hub's
    401/403 message."""
    hub = auth_hub()
    proxy = proxy_to(hub)
    user = token(publish=["user.42"], subscribe=["user.42"])
    page = client_page(pages, proxy.url)
    watch(page, "auto", ["user.42"], {"token": user})
    wait_state(page, "auto", "open")
    assert page.evaluate("subs.auto.transport") == "fetch"

    outcome = page.evaluate(
        """async (user) => {
            const settle = (promise) => promise.then(
                (id) => ({id}), (e) => ({status: e.status, message: e.message}));
            const granted = new SSEHub.Hub({token: user});
            const anonymous = new SSEHub.Hub();
            return {
                private: await settle(granted.publish("user.42", "only for 42", {private: true})),
                other: await settle(granted.publish("user.7", "not granted")),
                none: await settle(anonymous.publish("user.42", "no token")),
            };
        }""",
        user,
    )
    assert wait_events(page, "auto", 1) == [["only for 42", outcome["private"]["id"]]]
    assert outcome["other"]["status"] == 403
    refused_other = httpx.post(
        f"{hub.url}/publish",
        json={"topic": "user.7", "data": "x"},
        headers={"Authorization": f"Bearer {user}"},
        timeout=5,
    )
    assert outcome["other"]["message"] == refused_other.json()["error"]
    assert outcome["none"]["status"] == 401
    assert outcome["none"]["message"].startswith("no token")

    [stream] = proxy.seen("/events")
    assert stream.headers["authorization"] == f"Bearer {user}"
    assert stream.path == "/events?topic=user.42"
    published = proxy.seen("/publish", "authorization")
    assert {r.headers["authorization"] for r in published} == {f"Bearer {user}"}
    assert len(published) == 2
    page.evaluate("subs.auto.close()")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_private_events_reach_only_the_subscribers_granted_their_topic(
    auth_hub: Callable[..., HubProcess], pages: Pages, transport: str
) -> None:
    hub = auth_hub("--allow-anonymous")
    granted = client_page(pages, hub.url)
    anonymous = client_page(pages, hub.url)
    other_user = client_page(pages, hub.url)
    watch(granted, "me", ["user.42"], {"token": token(subscribe=["user.42"])}, transport=transport)
    watch(anonymous, "me", ["user.42"], {}, transport=transport)
    watch(
        other_user, "me", ["user.42"], {"token": token(subscribe=["user.7"])}, transport=transport
    )
    for page in (granted, anonymous, other_user):
        wait_state(page, "me", "open")

    secret = publish(hub, "user.42", "your order shipped", private=True)
    public = publish(hub, "user.42", "maintenance at noon")
    assert wait_events(granted, "me", 2) == [
        ["your order shipped", secret],
        ["maintenance at noon", public],
    ]
    # Each stream delivers in publish order: the public event arriving means the private one,
    # published before it, was not sent to these two.
    assert wait_events(anonymous, "me", 1) == [["maintenance at noon", public]]
    assert wait_events(other_user, "me", 1) == [["maintenance at noon", public]]
    for page in (granted, anonymous, other_user):
        page.evaluate("subs.me.close()")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_token_function_is_called_again_before_a_reconnection(
    auth_hub: Callable[..., HubProcess],
    proxy_to: Callable[[HubProcess], CuttableProxy],
    pages: Pages,
    transport: str,
) -> None:
    """The proxy cuts the stream and holds the reconnection while an event is published: the
    reconnection carries a fresh token from the function (a Promise here) and resumes from the
    last event, so the page gets every event once."""
    hub = auth_hub()
    proxy = proxy_to(hub)
    minted: list[str] = []
    numbers = itertools.count(1)

    def mint() -> str:
        minted.append(token(subscribe=["prices"], payload={"n": next(numbers)}))
        return minted[-1]

    page = client_page(pages, proxy.url)
    page.expose_function("mintToken", mint)  # the page gets a Promise of the token
    watch(page, "f", ["prices"], {"tokenFunction": True}, transport=transport, retry=250)
    wait_state(page, "f", "open")
    first = publish(hub, "prices", "101.5")
    wait_events(page, "f", 1)
    assert page.evaluate("runs.f.calls") == 1

    proxy.hold("/events")
    assert proxy.cut("/events") == 1
    wait_state(page, "f", "reconnecting")
    # The page asks for a token (answered while Playwright waits on the page), then reconnects.
    page.wait_for_function("() => runs.f.calls === 2")
    proxy.wait_for(lambda: len(proxy.seen("/events")) == 2)
    missed = publish(hub, "prices", "102.25")
    proxy.release()

    assert wait_events(page, "f", 2) == [["101.5", first], ["102.25", missed]]
    wait_state(page, "f", "open")
    assert page.evaluate("runs.f.calls") == 2
    assert len(minted) == 2 and minted[0] != minted[1]
    opening, reconnect = proxy.seen("/events")
    if transport == "eventsource":
        assert opening.path == f"/events?topic=prices&authorization={minted[0]}"
        assert reconnect.path == (
            f"/events?topic=prices&last_event_id={first}&authorization={minted[1]}"
        )
    else:
        assert opening.headers["authorization"] == f"Bearer {minted[0]}"
        assert reconnect.headers["authorization"] == f"Bearer {minted[1]}"
        assert reconnect.headers["last-event-id"] == first
    assert page.evaluate("runs.f.info.reconnects") == 1
    page.evaluate("subs.f.close()")


def test_a_stream_ended_by_token_expiry_comes_back_with_a_fresh_token(
    auth_hub: Callable[..., HubProcess], pages: Pages
) -> None:
    """The hub ends a stream when its token expires; the token function gives the next one."""
    hub = auth_hub()
    minted: list[str] = []

    def mint() -> str:
        # The first token lives one second (the hub ends the stream then), the next ten minutes.
        minted.append(token(subscribe=["clock"], ttl=1 if not minted else 600))
        return minted[-1]

    page = client_page(pages, hub.url)
    page.expose_function("mintToken", mint)
    watch(page, "f", ["clock"], {"tokenFunction": True})
    page.wait_for_function("() => runs.f.calls === 2 && runs.f.states.at(-1) === 'open'")
    assert page.evaluate("runs.f.states") == ["connecting", "open", "reconnecting", "open"]
    event_id = publish(hub, "clock", "tick")
    assert wait_events(page, "f", 1) == [["tick", event_id]]
    page.evaluate("subs.f.close()")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_same_origin_cookie_needs_no_token_option(
    auth_hub: Callable[..., HubProcess], pages: Pages, transport: str
) -> None:
    hub = auth_hub()
    page = client_page(pages, hub.url)
    page.evaluate(
        "(jwt) => { document.cookie = `mercureAuthorization=${jwt}; path=/; SameSite=Strict`; }",
        token(subscribe=["user.42"]),
    )
    watch(page, "cookie", ["user.42"], {}, transport=transport)
    wait_state(page, "cookie", "open")
    event_id = publish(hub, "user.42", "by cookie", private=True)
    assert wait_events(page, "cookie", 1) == [["by cookie", event_id]]
    page.evaluate("subs.cookie.close()")


def test_shared_connections_follow_the_token(
    auth_hub: Callable[..., HubProcess],
    proxy_to: Callable[[HubProcess], CuttableProxy],
    pages: Pages,
) -> None:
    """Tabs sharing connections through the SharedWorker share one per token: a string token
    goes to the worker (as a header), never to another token's stream; a token function cannot
    cross to the worker, so its tab keeps a fetch connection of its own."""
    hub = auth_hub()
    proxy = proxy_to(hub)
    mine, theirs = token(subscribe=["user.42"]), token(subscribe=["user.7"])
    tabs = [client_page(pages, proxy.url) for _ in range(4)]
    for tab, jwt in zip(tabs[:3], [mine, mine, theirs], strict=True):
        watch(tab, "s", ["user.42"], {"token": jwt, "shared": True})
    tabs[3].expose_function("mintToken", lambda: mine)
    watch(tabs[3], "s", ["user.42"], {"tokenFunction": True, "shared": True})
    for tab in tabs:
        wait_state(tab, "s", "open")
    assert [tab.evaluate("subs.s.transport") for tab in tabs] == ["shared"] * 3 + ["fetch"]

    secret = publish(hub, "user.42", "for 42", private=True)
    public = publish(hub, "user.42", "for all")
    for tab in (tabs[0], tabs[1], tabs[3]):
        assert wait_events(tab, "s", 2) == [["for 42", secret], ["for all", public]]
    assert wait_events(tabs[2], "s", 1) == [["for all", public]]
    # One stream per token for the shared tabs, one for the function's tab.
    sent = sorted(r.headers["authorization"] for r in proxy.seen("/events"))
    assert sent == sorted([f"Bearer {mine}", f"Bearer {theirs}", f"Bearer {mine}"])
    for tab in tabs:
        tab.evaluate("subs.s.close()")


# -- the console ----------------------------------------------------------------------------------


def hub_error(response: httpx.Response) -> str:
    message: str = response.json()["error"]
    return message


def test_console_token_field(auth_hub: Callable[..., HubProcess], pages: Pages) -> None:
    hub = auth_hub("--allow-anonymous")
    user = token(publish=["user.42"], subscribe=["user.42"])
    page = pages.open(f"{hub.url}/?topics=user.42&connect=0")
    expect(page.locator("label[for=token]")).to_contain_text("Token (JWT)")
    expect(page.locator("label[for=token] .hint")).to_contain_text(
        "needed when the hub runs with --jwt-key"
    )
    page.fill("#token", user)
    page.click("#connect")
    expect(page.locator("#state")).to_have_text("open")

    # Kept for this tab only; the page's text shows only the start of it.
    assert page.evaluate("sessionStorage.getItem('ssehub.console.token')") == user
    assert page.evaluate("localStorage.length") == 0
    shown = f"-H 'Authorization: Bearer {user[:12]}…'"
    expect(page.locator("#curl-subscribe")).to_contain_text(shown)
    expect(page.locator("#curl-publish")).to_contain_text(shown)

    # Publish through the form: public, then private (the curl line says so too).
    page.fill("#pub-topic", "user.42")
    page.fill("#pub-data", "public news")
    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text(
        re.compile(r"^Published id \d+ to user\.42$")
    )
    page.check("#pub-private")
    expect(page.locator("#curl-publish")).to_contain_text('"private":true')
    page.fill("#pub-data", '{"note": "your order shipped"}')
    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text(
        re.compile(r"^Published id \d+ to user\.42 \(private\)$")
    )
    private_id = page.locator("#publish-result").inner_text().split()[2]
    rows = page.locator("#events .event:not(.system)")
    expect(rows.locator(".event-data")).to_have_text(
        [json.dumps({"note": "your order shipped"}, indent=2), "public news"]
    )
    expect(rows.first).to_have_attribute("data-id", private_id)
    assert user not in page.locator("body").inner_text()
    assert user not in page.content()
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    screenshot(page, "console-token", full_page=True)

    # Another tab has no token (sessionStorage is per tab): anonymous, public events only.
    other = pages.open(f"{hub.url}/?topics=user.42")
    expect(other.locator("#token")).to_have_value("")
    expect(other.locator("#state")).to_have_text("open")
    page.fill("#pub-data", "second private")
    page.click("#publish")
    expect(page.locator("#publish-result")).to_contain_text("(private)")
    page.uncheck("#pub-private")
    page.fill("#pub-data", "second public")
    page.click("#publish")
    expect(page.locator("#publish-result")).not_to_contain_text("(private)")
    expect(rows).to_have_count(4)
    expect(other.locator("#events .event:not(.system) .event-data")).to_have_text(["second public"])
    # ... and may not publish: the hub's 401 in the publish result.
    other.click("#publish")
    refused = httpx.post(f"{hub.url}/publish", data={"topic": "user.42", "data": "x"})
    expect(other.locator("#publish-result")).to_have_text(f"Not published: {hub_error(refused)}")
    expect(other.locator("#publish-result")).to_have_attribute("data-kind", "error")

    # A 403: the token grants publishing to user.42 only.
    page.fill("#pub-topic", "news")
    page.click("#publish")
    forbidden = httpx.post(
        f"{hub.url}/publish",
        data={"topic": "news", "data": "x"},
        headers={"Authorization": f"Bearer {user}"},
    )
    assert forbidden.status_code == 403
    expect(page.locator("#publish-result")).to_have_text(f"Not published: {hub_error(forbidden)}")
    page.fill("#pub-topic", "user.42")

    # A bad token: the hub's 401 message, for the stream and for a publish.
    bad = "not-a-real-token"
    page.fill("#token", bad)
    page.click("#connect")
    malformed = httpx.get(
        f"{hub.url}/events?topic=user.42", headers={"Authorization": f"Bearer {bad}"}
    )
    assert malformed.status_code == 401
    error_row = page.locator('#events .event.system[data-kind="error"]')
    expect(error_row).to_have_text(
        re.compile(re.escape(f"closed: HTTP 401 — {hub_error(malformed)}") + "$")
    )
    expect(page.locator("#state")).to_have_text("closed")
    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text(f"Not published: {hub_error(malformed)}")
    # The field survives a reload of the tab.
    page.reload()
    expect(page.locator("#token")).to_have_value(bad)
