"""Every example, started with its own one command (on a free port), checked over HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_asgi_support import Process, events, http, python, server_process

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def example(name: str, *args: str) -> Iterator[Process]:
    with server_process(python(str(EXAMPLES / f"{name}.py"), "--port", "0", *args)) as process:
        yield process


@pytest.fixture(scope="module")
def fastapi_clock() -> Iterator[Process]:
    yield from example("fastapi_clock")


@pytest.fixture(scope="module")
def flask_clock() -> Iterator[Process]:
    yield from example("flask_clock")


@pytest.fixture(scope="module")
def notifications() -> Iterator[Process]:
    yield from example("notifications")


@pytest.fixture(scope="module")
def ai_chat() -> Iterator[Process]:
    yield from example("ai_chat", "--token-delay", "0.005")


# -- the clock, in FastAPI and in Flask ---------------------------------------------------------


@pytest.mark.parametrize("server", ["fastapi_clock", "flask_clock"])
def test_clock_ticks_then_ends(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server).url
    with events(f"{url}/clock?count=3&interval=0.01") as stream:
        received = stream.rest()
    assert [(e.event, e.id) for e in received] == [
        ("message", "0"),
        ("message", "1"),
        ("message", "2"),
        ("end", "2"),
    ]
    assert all(e.data for e in received)


@pytest.mark.parametrize("server", ["fastapi_clock", "flask_clock"])
def test_clock_continues_the_count_after_a_reconnect(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server).url
    with events(f"{url}/clock?count=4&interval=0", last_event_id="1") as stream:
        assert [e.id for e in stream.rest()] == ["2", "3", "3"]


@pytest.mark.parametrize("server", ["fastapi_clock", "flask_clock"])
def test_clock_page_closes_its_event_source_on_end(
    server: str, request: pytest.FixtureRequest
) -> None:
    page = http.get(request.getfixturevalue(server).url).text
    assert 'new EventSource("/clock")' in page
    assert 'addEventListener("end"' in page and "source.close()" in page


# -- notifications ------------------------------------------------------------------------------


def test_a_notification_reaches_every_connected_client(notifications: Process) -> None:
    url = notifications.url
    with (
        events(f"{url}/events") as first,
        events(f"{url}/events") as second,
        events(f"{url}/events") as third,
    ):
        for stream in (first, second, third):
            stream.until_position()
        reply = http.post(f"{url}/notify", json={"title": "Deploy finished", "level": "success"})
        assert reply.status_code == 200
        assert reply.json()["success"] is True
        received = [stream.next() for stream in (first, second, third)]
    assert {(e.event, e.id) for e in received} == {("notification", reply.json()["id"])}
    assert json.loads(received[0].data) == {
        "title": "Deploy finished",
        "body": "",
        "level": "success",
    }


def test_a_reconnecting_client_gets_the_notifications_it_missed(notifications: Process) -> None:
    url = notifications.url
    with events(f"{url}/events") as stream:
        position = stream.until_position()
    missed = [http.post(f"{url}/notify", json={"title": f"n{i}"}).json()["id"] for i in range(2)]
    with events(f"{url}/events", last_event_id=position) as stream:
        assert [e.id for e in stream.take(2)] == missed


def test_invalid_notifications_are_refused(notifications: Process) -> None:
    assert http.post(f"{notifications.url}/notify", json={"title": ""}).status_code == 422
    assert http.post(f"{notifications.url}/notify", json={"level": "x"}).status_code == 422


def test_the_mounted_hub_api_publishes_to_the_same_clients(notifications: Process) -> None:
    url = notifications.url
    with events(f"{url}/events") as stream:
        stream.until_position()
        reply = http.post(
            f"{url}/hub/publish",
            json={"topic": "notifications", "event": "notification", "data": {"title": "hub"}},
        )
        assert reply.status_code == 200
        assert json.loads(stream.next().data) == {"title": "hub"}


# -- AI chat ------------------------------------------------------------------------------------


def tokens_of(received: list[object]) -> str:
    return "".join(json.loads(e.data).get("content", "") for e in received)  # type: ignore[attr-defined]


def test_chat_streams_the_answer_token_by_token(ai_chat: Process) -> None:
    from ai_chat import fake_model

    body = {"id": "whole", "message": "hello"}
    with events(f"{ai_chat.url}/chat", method="POST", json=body) as stream:
        assert stream.response.headers["x-answer-id"] == "whole"
        received = stream.rest()
    assert [json.loads(e.data) for e in received[-1:]] == [{"done": True}]
    assert [json.loads(e.data)["content"] for e in received[:-1]] == fake_model("hello")
    assert "".join(fake_model("hello")).startswith("You said")  # English unless asked in Chinese


def test_chat_resumes_mid_answer_without_losing_or_repeating_tokens(ai_chat: Process) -> None:
    from ai_chat import fake_model

    body = {"id": "resumed", "message": "断线重连"}
    with events(f"{ai_chat.url}/chat", method="POST", json=body) as stream:
        before = stream.take(5)  # then the connection drops
    last_id = before[-1].id
    with events(f"{ai_chat.url}/chat", method="POST", json=body, last_event_id=last_id) as stream:
        after = stream.rest()
    ids = [e.id for e in before + after]
    assert len(ids) == len(set(ids))
    assert json.loads(after[-1].data) == {"done": True}
    assert tokens_of([*before, *after]) == "".join(fake_model("断线重连"))
    assert tokens_of(before).startswith("这是对")  # asked in Chinese, answered in Chinese


def test_chat_refuses_to_resume_an_unknown_answer(ai_chat: Process) -> None:
    reply = http.post(
        f"{ai_chat.url}/chat",
        json={"id": "never-started", "message": "x"},
        headers={"Last-Event-ID": "1"},
    )
    assert reply.status_code == 404
