"""The C fast path of POST /publish (ssehub.server._publish_c) against the general path.

The general path (httptools, the routes' form parsing, `Publication.draft`) is the reference.
For random requests, common and odd, whatever the fast path accepts must be read exactly as the
general path reads it, down to the encoded bytes; and the common case must be accepted, or the
fast path would be dead weight. The server's own tests then run over it on real sockets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_plus

import httptools
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ssehub.api import HTTPError, Request, parse_publications
from ssehub.model import Draft, InvalidPublication, draft_all

try:
    from ssehub.server._publish_c import parse
except ImportError as exc:
    pytest.skip(f"ssehub.server._publish_c was not built: {exc}", allow_module_level=True)

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024


class _Message:
    """httptools callbacks collecting one request."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpRequestParser(self)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.lower().decode("latin-1"), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # as the server asks: in the callback


def general_path(raw: bytes) -> tuple[bool, list[Draft]] | None:
    """(keep_alive, drafts) the general path makes of one whole request; None if it refuses."""
    message = _Message()
    parser = message.parser
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError:
        return None
    if not message.complete:
        return None
    method = parser.get_method().decode()
    request = Request.parse_target(method, message.url.decode("latin-1"), message.headers)
    request.body = message.body
    if (request.method, request.path) != ("POST", "/publish"):
        return None
    # Refused by Api.handle before any route: no Host (HTTP/1.1), an encoded body.
    if "host" not in request.headers or request.headers.get("content-encoding"):
        return None
    try:
        return message.keep_alive, draft_all(parse_publications(request))
    except (HTTPError, InvalidPublication):
        return None


def fast_path(raw: bytes, start: int = 0) -> tuple[int, bool, Draft] | None:
    fields = parse(raw, start, MAX_HEAD, MAX_BODY, False)
    if fields is None:
        return None
    end, keep_alive, topic, data, event, retry, encoded, authorization, host = fields
    assert authorization is None  # handed back only with strict
    assert host == "hub" or "host" in raw.decode("latin-1").lower()
    return end, keep_alive, Draft((topic,), data, event, retry, encoded)


def request(
    body: bytes, headers: list[tuple[str, str]] | None = None, *, host: bool = True
) -> bytes:
    """A POST /publish with these headers (with Host first, unless `host` is false)."""
    if headers is None:
        headers = [("Content-Type", "application/x-www-form-urlencoded")]
        headers.append(("Content-Length", str(len(body))))
    if host:
        headers = [("Host", "hub"), *headers]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return b"POST /publish HTTP/1.1\r\n" + head.encode("latin-1") + b"\r\n" + body


def assert_agrees(raw: bytes) -> tuple[int, bool, Draft] | None:
    fast = fast_path(raw)
    if fast is not None:
        end, keep_alive, draft = fast
        assert general_path(raw[:end]) == (keep_alive, [draft])
    return fast


# -- the common case is taken, and read as the general path reads it ---------------------------

characters = st.characters(exclude_categories=("Cs",))  # str that UTF-8 can encode
topics = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
texts = st.text(characters)
event_types = st.one_of(
    st.just("message"),
    st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",))),
)


@settings(max_examples=400)
@given(
    topic=topics.filter(lambda t: len(t) <= 256),
    data=st.one_of(st.none(), texts),
    event=st.one_of(st.none(), event_types.filter(bool)),
    retry=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    order=st.randoms(),
    escape=st.sampled_from([quote_plus, quote]),
)
@example(topic="news", data="a\r\nb\rc\nd", event=None, retry=7, order=None, escape=quote_plus)
def test_valid_form_publishes_take_the_fast_path_and_match_the_general_path(
    topic: str,
    data: str | None,
    event: str | None,
    retry: int | None,
    order: Any,
    escape: Any,
) -> None:
    pairs = [("topic", topic), ("data", data), ("event", event), ("retry", retry)]
    fields = [f"{name}={escape(str(value), safe='')}" for name, value in pairs if value is not None]
    if order is not None:
        order.shuffle(fields)
    raw = request("&".join(fields).encode())
    fast = assert_agrees(raw)
    assert fast is not None, raw
    assert fast[0] == len(raw)


# -- anything odd: declined, or read the same ----------------------------------------------------

header_names = st.sampled_from(
    [
        "Host",
        "Content-Encoding",
        "Sec-Fetch-Site",
        "X-Forwarded-For",
        "content-type",
        "Content-Length",
        "CONNECTION",
        "Origin",
        "Expect",
        "X-Trace",
        "Transfer-Encoding",
        "Proxy-Connection",
        "Upgrade",
        "Bad Name",
        "Content-length",
    ]
)
header_values = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/json",
        "text/plain",
        "keep-alive",
        "close",
        "Keep-Alive",
        "upgrade",
        "chunked",
        "100-continue",
        "http://example.com",
        "",
        "  spaced  ",
        "7",
        "0012",
        "-1",
        "1e3",
        "x\x01y",
        "é".encode().decode("latin-1"),
    ]
)
form_pieces = st.sampled_from(
    [
        "topic=t",
        "topic=a%20b",
        "topic=",
        "topic=%E9",
        "data=hi",
        "data=%0A%0D",
        "data=%zz",
        "data=50%",
        "event=up",
        "event=",
        "event=a%0Ab",
        "event=message",
        "retry=5",
        "retry=",
        "retry=x",
        "retry=" + "9" * 19,
        "retry=2147483647",
        "retry=2147483648",
        "retry=" + "9" * 5000,
        "id=1",
        "topic=u",
        "=x",
        "x",
        "",
        "data=é",
        "data=\xa9",
        "topic=%C3%A9",
        "data=%C3",
        "data=%C3%A9",
        "data=a+b",
    ]
)


@settings(max_examples=1500)
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=5),
    pieces=st.lists(form_pieces, max_size=5),
    length_delta=st.sampled_from([0, 0, 0, -1, 1]),
    framing=st.sampled_from(["length", "length", "none", "twice"]),
)
def test_odd_requests_are_declined_or_read_as_the_general_path_reads_them(
    headers: list[tuple[str, str]], pieces: list[str], length_delta: int, framing: str
) -> None:
    body = "&".join(pieces).encode("latin-1")
    all_headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    if framing != "none":
        all_headers.append(("Content-Length", str(max(0, len(body) + length_delta))))
    if framing == "twice":
        all_headers.append(("Content-Length", str(len(body))))
    assert_agrees(request(body, all_headers, host=False))


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /publish HTTP/1.0\r\nHost: h\r\nContent-Length: 7\r\n\r\ntopic=t",
        b"POST /publish?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\ntopic=t",
        b"POST /publish HTTP/1.1\nContent-Length: 7\n\ntopic=t",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length : 7\r\n\r\ntopic=t",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\nContent-Length: 7\r\n\r\ntopic=t",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7\r\ntopic=t\r\n0\r\n\r\n",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nOrigin: http://a\r\nContent-Length: 7\r\n\r\n"
        b"topic=t",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\ntopic=",  # incomplete body
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n",  # incomplete head
        b"GET /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\ntopic=t",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\ntopic=a&b",
        b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\ntopic=a&topic=b",  # a list
        b"POST /publish HTTP/1.1\r\nContent-Length: 7\r\n\r\ntopic=t",  # no Host: 400
    ],
)
def test_what_the_fast_path_leaves_to_the_general_path(raw: bytes) -> None:
    assert fast_path(raw) is None


def test_a_head_over_the_limit_goes_to_the_general_path_which_answers_431() -> None:
    raw = request(b"topic=t", [("X-Big", "x" * 100), ("Content-Length", "7")])
    assert parse(raw, 0, 64, MAX_BODY, False) is None
    assert parse(raw, 0, MAX_HEAD, MAX_BODY, False) is not None


def test_a_body_over_the_limit_goes_to_the_general_path_which_answers_413() -> None:
    raw = request(b"topic=t&data=" + b"x" * 100)
    assert parse(raw, 0, MAX_HEAD, 50, False) is None


def test_pipelined_requests_are_read_one_at_a_time_from_where_the_last_ended() -> None:
    first, second = request(b"topic=a&data=1"), request(b"topic=b&data=2")
    raw = first + second + second[:10]
    fast = fast_path(raw)
    assert fast is not None and fast[0] == len(first) and fast[2].data == "1"
    fast = fast_path(raw, len(first))
    assert fast is not None and fast[0] == len(first) + len(second) and fast[2].topics == ("b",)
    assert fast_path(raw, len(first) + len(second)) is None  # the rest is still to come


def test_connection_close_is_reported() -> None:
    body = b"topic=t"
    fast = assert_agrees(request(body, [("Connection", "close"), ("Content-Length", "7")]))
    assert fast is not None and fast[1] is False


def test_wrong_arguments_raise() -> None:
    with pytest.raises(TypeError):
        parse("text", 0, MAX_HEAD, MAX_BODY, False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse(b"abc", 4, MAX_HEAD, MAX_BODY, False)


# -- strict: with an authorization policy, only headers the fast path knows ----------------------

KNOWN = ("Host", "User-Agent", "Accept", "Accept-Encoding", "Content-Type", "Connection")
UNKNOWN = ("Cookie", "Via", "X-Request-Id", "X-Trace", "X-Requested-With", "Proxy-Auth")

Fields = tuple[int, bool, str, str, str, int | None, bytes, str | None, str]


def strict_fast_path(raw: bytes) -> Fields | None:
    return parse(raw, 0, MAX_HEAD, MAX_BODY, True)


@pytest.mark.parametrize("name", UNKNOWN)
def test_strict_declines_any_header_it_does_not_know(name: str) -> None:
    body = b"topic=t&data=x"
    raw = request(body, [(name, "Bearer abc"), ("Content-Length", "14")])
    assert fast_path(raw) is not None  # no policy: nothing the hub reads
    assert strict_fast_path(raw) is None  # a policy: the general path judges it


def test_strict_hands_back_one_authorization_for_the_policy_and_declines_two() -> None:
    body = b"topic=t&data=x"
    one = request(body, [("Authorization", "Bearer a.b.c"), ("Content-Length", "14")])
    fields = strict_fast_path(one)
    assert fields is not None and fields[7] == "Bearer a.b.c"
    two = request(
        body,
        [("Authorization", "Bearer a"), ("authorization", "Bearer b"), ("Content-Length", "14")],
    )
    assert strict_fast_path(two) is None


@settings(max_examples=300)
@given(
    names=st.lists(st.sampled_from([*KNOWN, *UNKNOWN, "Authorization", "COOKIE"]), max_size=4),
    data=texts,
)
def test_strict_takes_a_request_only_when_it_carries_no_other_header_and_reads_it_the_same(
    names: list[str], data: str
) -> None:
    body = f"topic=t&data={quote_plus(data)}".encode()
    values = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "keep-alive"}
    headers = [(name, values.get(name, "v")) for name in dict.fromkeys(names) if name != "Host"]
    raw = request(body, [*headers, ("Content-Length", str(len(body)))])
    strict = strict_fast_path(raw)
    allowed = {known.lower() for known in (*KNOWN, "Authorization")}
    if any(name.lower() not in allowed for name, _ in headers):
        assert strict is None
    else:
        assert strict is not None
        plain = parse(raw, 0, MAX_HEAD, MAX_BODY, False)
        assert plain is not None and strict[:7] == plain[:7]
        assert strict[7] == ("v" if "Authorization" in names else None)


@pytest.mark.parametrize("topic", ["café", "日本", "a\u2028b", "a\u200bb", "a\u00a0b", "a\u0085b"])
def test_a_topic_beyond_printable_ascii_is_left_to_the_general_path(topic: str) -> None:
    raw = request(f"topic={quote_plus(topic)}&data=x".encode())
    assert fast_path(raw) is None
    accepted = general_path(raw)
    assert (accepted is not None) == topic.isprintable()
