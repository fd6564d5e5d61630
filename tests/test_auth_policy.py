"""ssehub.auth: topic selectors (RFC 6570 templates), grants, token lookup, JWT policy, minting.

Pure units: no server, no sockets, no sleeps. Time is a fake clock handed to the policy.
"""

from __future__ import annotations

import ast
import base64
import copy
import functools
import hashlib
import hmac
import json
import math
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ssehub.auth
from ssehub.auth import (
    ALGORITHMS,
    ANONYMOUS,
    MAX_TOKEN_LENGTH,
    AuthError,
    FoundToken,
    Grants,
    Policy,
    Selector,
    TokenSource,
    check_publish,
    compile_selector,
    find_token,
    mint_token,
    selector_matches,
)

SECRET = "0123456789abcdef" * 4  # 64 bytes: long enough for HS512 (RFC 7518 §3.2)
OTHER_SECRET = "fedcba9876543210" * 4
NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- key material ------------------------------------------------------------------------------


@functools.cache
def keypair(kind: str) -> tuple[str, str]:
    """(private PEM, public PEM), generated once per test session."""
    private: Any
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "rsa1024":
        private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    elif kind == "p256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif kind == "p384":
        private = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        assert kind == "ed448"
        private = ed448.Ed448PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


KIND = {"RS": "rsa", "ES256": "p256", "ES384": "p384", "EdDSA": "ed25519"}


def keys_for(algorithm: str) -> tuple[str, str]:
    """(signing key, verifying key) for an algorithm."""
    if algorithm.startswith("HS"):
        return SECRET, SECRET
    return keypair(KIND.get(algorithm, KIND.get(algorithm[:2], "")))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: Any, payload: Any, secret: str | bytes = SECRET) -> str:
    """A JWS signed with HMAC-SHA256 by hand: any header, any payload (bytes: as they are), any
    secret, including what PyJWT's encoder refuses to produce."""
    key = secret.encode() if isinstance(secret, str) else secret
    head = b64(json.dumps(header).encode())
    body = b64(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def refused(call: Callable[[], object]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        call()
    return caught.value


# -- selectors: *, exact, RFC 6570 templates -------------------------------------------------------


def test_the_wildcard_matches_every_topic_and_exact_selectors_match_only_themselves() -> None:
    assert selector_matches("*", "orders")
    assert selector_matches("*", "https://example.com/a?b#c")
    assert selector_matches("orders", "orders")
    assert not selector_matches("orders", "Orders")  # case-sensitive, byte for byte
    assert not selector_matches("orders", "orders2")
    assert not selector_matches("orders", "order")
    assert not selector_matches("https://example.com/a", "https://example.com/a/")


# RFC 6570 §3.2's variables and the expansions it lists for them (level 1 to 4). Non-exploded
# list and map values (`{list}` -> "red,green,blue") are documented non-matches: see below.
RFC6570_EXAMPLES = [
    ("{var}", "value"),
    ("{hello}", "Hello%20World%21"),
    ("{half}", "50%25"),
    ("O{empty}X", "O{empty}X"),  # the template itself (exact rule); an empty value does not
    ("{x,y}", "1024,768"),
    ("{x,hello,y}", "1024,Hello%20World%21,768"),
    ("?{x,empty}", "?{x,empty}"),
    ("{var:3}", "val"),
    ("{var:30}", "value"),
    ("{+var}", "value"),
    ("{+hello}", "Hello%20World!"),
    ("{+path}/here", "/foo/bar/here"),
    ("here?ref={+path}", "here?ref=/foo/bar"),
    ("{+x,hello,y}", "1024,Hello%20World!,768"),
    ("{+path,x}/here", "/foo/bar,1024/here"),
    ("{+path:6}/here", "/foo/b/here"),
    ("{#var}", "#value"),
    ("{#hello}", "#Hello%20World!"),
    ("{#x,hello,y}", "#1024,Hello%20World!,768"),
    ("{#path,x}/here", "#/foo/bar,1024/here"),
    ("{#path:6}/here", "#/foo/b/here"),
    ("X{.var}", "X.value"),
    ("X{.x,y}", "X.1024.768"),
    ("X{.var:3}", "X.val"),
    ("X{.list*}", "X.red.green.blue"),
    ("X{.keys*}", "X.semi=%3B.dot=..comma=%2C"),
    ("{/var}", "/value"),
    ("{/var,x}/here", "/value/1024/here"),
    ("{/list*}", "/red/green/blue"),
    ("{/list*,path:4}", "/red/green/blue/%2Ffoo"),
    ("{/keys*}", "/semi=%3B/dot=./comma=%2C"),
    ("{;x,y}", ";x=1024;y=768"),
    ("{;x,y,empty}", ";x=1024;y=768;empty"),
    ("{;hello:5}", ";hello=Hello"),
    ("{;list*}", ";list=red;list=green;list=blue"),
    ("{;keys*}", ";semi=%3B;dot=.;comma=%2C"),
    ("{?x,y}", "?x=1024&y=768"),
    ("{?x,y,empty}", "?x=1024&y=768&empty="),
    ("{?var:3}", "?var=val"),
    ("{?list*}", "?list=red&list=green&list=blue"),
    ("{?keys*}", "?semi=%3B&dot=.&comma=%2C"),
    ("?fixed=yes{&x}", "?fixed=yes&x=1024"),
    ("{&x,y,empty}", "&x=1024&y=768&empty="),
    ("{&var:3}", "&var=val"),
    ("{&list*}", "&list=red&list=green&list=blue"),
    ("{&keys*}", "&semi=%3B&dot=.&comma=%2C"),
    ("{list*}", "red,green,blue"),
    ("{keys*}", "semi=%3B,dot=.,comma=%2C"),
    ("{+list*}", "red,green,blue"),
    ("{#keys*}", "#semi=;,dot=.,comma=,"),
]


@pytest.mark.parametrize(("template", "expansion"), RFC6570_EXAMPLES)
def test_rfc6570_expansions_match_their_template(template: str, expansion: str) -> None:
    assert selector_matches(template, expansion)


@pytest.mark.parametrize(
    ("template", "topic"),
    [
        ("{list}", "red,green,blue"),  # a non-exploded list: write {list*}
        ("{keys}", "semi,%3B,dot,.,comma,%2C"),
        ("O{empty}X", "OX"),  # every variable has a non-empty value
        ("{var:3}", "valu"),  # prefix: at most 3 units
        ("{hello}", "Hello World!"),  # a space and "!" are not unreserved: %20 and %21
        ("{hello}", "Hello%2"),  # "%" only as a whole triplet
        ("{hello}", "Hello%zz"),
        ("{var}", "café"),  # non-ASCII only as template text: RFC 6570 would encode it
        ("X{.x,y}", "X.1024"),  # every variable must be there
        ("{?x,y}", "?x=1024"),
        ("{/var}", "value"),  # the operator's first character is required
        ("{#var}", "value"),
    ],
)
def test_what_templates_do_not_match(template: str, topic: str) -> None:
    assert compile_selector(template).is_template
    assert not selector_matches(template, topic)


def test_a_variable_never_matches_across_a_path_segment() -> None:
    template = "https://example.com/users/{id}"
    assert selector_matches(template, "https://example.com/users/7")
    assert selector_matches(template, "https://example.com/users/alice.b-c_d~e%40f")
    for topic in [
        "https://example.com/users/7/friends",
        "https://example.com/users/",
        "https://example.com/users",
        "https://example.com/users/7?tab=1",
        "https://example.com/users/7#top",
        "xhttps://example.com/users/7",
        "https://example.com/users/7 ",
        "https://example.org/users/7",
    ]:
        assert not selector_matches(template, topic), topic


def test_templates_work_on_plain_topic_names() -> None:
    assert selector_matches("user.{id}", "user.42")
    assert selector_matches("user.{id}", "user.42.archive")  # "." is unreserved: RFC 6570 allows it
    assert not selector_matches("user.{id}", "user.")
    assert not selector_matches("user.{id}", "users.42")
    assert not selector_matches("user.{id}", "user.42/x")
    assert selector_matches("orders-{region}-{day}", "orders-eu-2024")
    assert selector_matches("chat:{room}", "chat:lobby")


def test_reserved_expansion_spans_segments_and_queries() -> None:
    assert selector_matches("https://example.com/{+path}", "https://example.com/a/b/c?d=1#e")
    assert selector_matches("files{/path*}", "files/a/b/c")
    assert not selector_matches("files{/path*}", "files")
    assert selector_matches("{+base}/users/{id}", "https://example.com/users/7")
    assert not selector_matches("{+base}/users/{id}", "https://example.com/users/7/x")


def test_the_mercure_drafts_alternate_topic_example() -> None:
    # draft-dunglas-mercure-07: "the `mercure.subscribe` claim could contain a topic selector
    # such as: `https://example.com/users/foo/{?topic}`", matched by an update whose alternate
    # topic is "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1".
    selector = "https://example.com/users/foo/{?topic}"
    assert selector_matches(
        selector, "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"
    )
    assert not selector_matches(selector, "https://example.com/books/1")
    assert not selector_matches(
        selector, "https://example.com/users/bar/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"
    )


def test_every_variable_of_a_template_must_be_present() -> None:
    template = "/search{?q,page}"
    assert selector_matches(template, "/search?q=a&page=2")
    assert selector_matches(template, "/search?q=&page=")
    assert not selector_matches(template, "/search?q=a")
    assert not selector_matches(template, "/search")
    assert not selector_matches(template, "/search?page=2&q=a")


def test_a_prefix_counts_units_and_a_triplet_is_one() -> None:
    assert selector_matches("{x:3}", "a%20b")
    assert selector_matches("{x:3}", "ab")
    assert not selector_matches("{x:3}", "a%20bc")
    assert selector_matches("{?x:2}", "?x=")
    assert not selector_matches("{?x:2}", "?x=abc")


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "}",
        "a{b",
        "a}b",
        "{a}}",
        "{{a}}",
        "{}",
        "{a,}",
        "{,a}",
        "{a b}",
        "{a-b}",
        "{a..b}",
        "{.a.}",
        "{a:0}",
        "{a:10000}",
        "{a:3*}",
        "{a**}",
        "{=a}",
        "{,a}",
        "{!a}",
        "{@a}",
        "{|a}",
        "{%zz}",
        "{id}/{id}",  # one variable twice: refused rather than matched more loosely,
        "{/var:1,var}",  # even in RFC 6570's own example (expansion "/v/value")
    ],
)
def test_a_malformed_template_matches_only_itself(text: str) -> None:
    selector = compile_selector(text)
    assert not selector.is_template
    assert selector.matches(text)
    assert not selector.matches("a")
    assert not selector.matches("1/2")


def test_well_formed_varnames_and_modifiers_make_templates() -> None:
    for text in ["{a}", "{a.b}", "{a_b}", "{A%20b}", "{a:9999}", "{a*}", "{+a,b:2,c*}", "x{.a}y"]:
        assert compile_selector(text).is_template, text


def test_compiled_selectors_are_cached_and_describe_themselves() -> None:
    assert compile_selector("users/{id}") is compile_selector("users/{id}")
    assert compile_selector("*").is_wildcard
    assert isinstance(compile_selector("a"), Selector)
    assert "template" in repr(compile_selector("users/{id}"))
    assert "exact" in repr(compile_selector("users"))


# An independent reference: the documented rules written as a Python regular expression (which
# backtracks, so it is only usable on short topics), built from the same structure as the
# template text.
U = r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})"
UR = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})"
OPERATORS = {
    "": ("", ",", False),
    "+": ("", ",", False),
    "#": ("#", ",", False),
    ".": (".", ".", False),
    "/": ("/", "/", False),
    ";": (";", ";", True),
    "?": ("?", "&", True),
    "&": ("&", "&", True),
}


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, str]:
    """(template text, reference regex) for 1-2 expressions of 1-2 variables."""
    text, pattern, number = "", "", 0
    literals = st.text(alphabet="ab/.-=", max_size=2)
    for _ in range(draw(st.integers(1, 2))):
        literal = draw(literals)
        text += literal
        pattern += re.escape(literal)
        operator = draw(st.sampled_from(list(OPERATORS)))
        first, sep, named = OPERATORS[operator]
        unit = UR if operator in ("+", "#") else U
        specs, parts = [], []
        for _ in range(draw(st.integers(1, 2))):
            name = f"v{number}"
            number += 1
            modifier = draw(st.sampled_from(["", "*", ":1", ":2"]))
            specs.append(name + modifier)
            if modifier == "*":
                item = f"{unit}+(?:={unit}*)?"
                parts.append(f"{item}(?:{re.escape(sep)}{item})*")
                continue
            count = f"{{1,{modifier[1:]}}}" if modifier else "+"
            if not named:
                parts.append(unit + count)
            elif operator == ";":
                parts.append(f"{name}(?:={unit}{count})?")
            else:
                parts.append(f"{name}={unit}{'{0,' + modifier[1:] + '}' if modifier else '*'}")
        text += "{" + operator + ",".join(specs) + "}"
        pattern += re.escape(first) + re.escape(sep).join(parts)
    literal = draw(literals)
    return text + literal, pattern + re.escape(literal)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), template=templates())
def test_matching_agrees_with_a_regular_expression_reference(
    data: st.DataObject, template: tuple[str, str]
) -> None:
    text, pattern = template
    topic = data.draw(
        st.one_of(
            st.from_regex(pattern, fullmatch=True),
            st.text(alphabet="ab1/.,;=?&#%2F-~v0", max_size=14),
        )
    )
    assume(len(topic) <= 14)  # the reference backtracks
    expected = topic == text or re.fullmatch(pattern, topic) is not None
    assert compile_selector(text).is_template
    assert Selector(text).matches(topic) == expected


def expand(value: str, reserved: bool) -> str:
    """RFC 6570 §3.2.1 encoding: U keeps unreserved characters, U+R also the reserved ones."""
    return quote(value, safe=":/?#[]@!$&'()*+,;=" if reserved else "")


@given(
    operator=st.sampled_from(list(OPERATORS)),
    values=st.lists(
        st.text(min_size=1, max_size=6).filter(lambda v: "%" not in v), min_size=1, max_size=3
    ),
    prefix=st.one_of(st.none(), st.integers(1, 5)),
    before=st.text(alphabet="abc/:.", max_size=5),
    after=st.text(alphabet="abc/:.", max_size=5),
)
def test_every_rfc6570_expansion_of_defined_values_matches(
    operator: str, values: list[str], prefix: int | None, before: str, after: str
) -> None:
    first, sep, named = OPERATORS[operator]
    reserved = operator in ("+", "#")
    names = [f"v{i}" for i in range(len(values))]
    parts = []
    for name, value in zip(names, values, strict=True):
        if prefix is not None:
            value = value.encode("ascii", "ignore").decode()[:prefix] or "a"
        encoded = expand(value, reserved)
        if named:
            parts.append(f"{name}={encoded}")
        else:
            parts.append(encoded)
    modifier = f":{prefix}" if prefix else ""
    template = before + "{" + operator + ",".join(n + modifier for n in names) + "}" + after
    topic = before + first + sep.join(parts) + after
    assert selector_matches(template, topic), (template, topic)
    # ... and one more path segment, query or fragment never does for a U operator
    if operator in ("", "/"):
        assert not selector_matches(template, before + first + sep.join(parts) + "/x" + after)


@given(
    operator=st.sampled_from(list(OPERATORS)),
    items=st.lists(st.text(alphabet="abc-_~", min_size=1, max_size=3), min_size=1, max_size=4),
    as_map=st.booleans(),
)
def test_every_exploded_list_or_map_expansion_matches(
    operator: str, items: list[str], as_map: bool
) -> None:
    first, sep, named = OPERATORS[operator]
    if as_map:
        words = [f"{item}={item}" for item in items]
    elif named:
        words = [f"list={item}" for item in items]
    else:
        words = items
    assert selector_matches("{" + operator + "list*}", first + sep.join(words))


@given(selector=st.text(max_size=30), topic=st.text(max_size=30))
def test_matching_never_raises(selector: str, topic: str) -> None:
    assert isinstance(selector_matches(selector, topic), bool)
    assert selector_matches(selector, selector)


@given(
    selector=st.text(alphabet="{}+#./;?&*:,=ab1%", max_size=16),
    topic=st.text(alphabet="{}+#./;?&*:,=ab1%", max_size=16),
)
def test_matching_never_raises_on_brace_heavy_input(selector: str, topic: str) -> None:
    assert isinstance(selector_matches(selector, topic), bool)


# -- grants ------------------------------------------------------------------------------------


def test_grants_may_publish_by_selector() -> None:
    grants = Grants(publish=("orders", "users/{id}"))
    assert grants.may_publish("orders")
    assert grants.may_publish("users/7")
    assert not grants.may_publish("users/7/x")
    assert not grants.may_publish("payments")
    assert Grants(publish=["*"]).may_publish("anything at all")
    # "If `mercure.publish` is not defined, or contains an empty array, then the publisher MUST
    # NOT be authorized to dispatch any update."
    assert not Grants().may_publish("orders")
    assert not ANONYMOUS.may_publish("orders")


def test_grants_may_receive_when_one_topic_of_the_event_matches() -> None:
    grants = Grants(subscribe=["users/42", "rooms/{room}"])
    assert grants.may_receive(["books/1", "users/42"])
    assert grants.may_receive(("rooms/lobby",))
    assert grants.may_receive(iter(["rooms/lobby"]))
    assert not grants.may_receive(["users/43", "rooms/lobby/x"])
    assert not grants.may_receive([])
    assert grants.may_receive("users/42")  # one topic as a string is one topic, not characters
    assert not Grants(subscribe=["u"]).may_receive("users/42")
    assert Grants(subscribe=["*"]).may_receive(["x"])
    assert not ANONYMOUS.may_receive(["users/42"])


def test_grants_key_is_the_set_of_subscribe_selectors() -> None:
    a = Grants(subscribe=["b", "a", "a"], publish=["x"], payload={"user": 1}, exp=5)
    b = Grants(subscribe=["a", "b"])
    assert a.key == b.key
    assert hash(a.key) == hash(b.key)
    assert a.key != Grants(subscribe=["a"]).key
    assert Grants(subscribe=["*", "a"]).key == Grants(subscribe=["*"]).key
    assert ANONYMOUS.key == Grants(publish=["*"]).key == frozenset()


def test_grants_are_frozen_hashable_values() -> None:
    a = Grants(publish=["p"], subscribe=["s"], payload={"u": [1]}, exp=10)
    b = Grants(publish=("p",), subscribe=("s",), payload={"u": [1]}, exp=10.0)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, ANONYMOUS}) == 2
    assert a != Grants(publish=["p"], subscribe=["s"], payload={"u": [2]}, exp=10)
    assert a != Grants(publish=["p"], subscribe=["s"], payload={"u": [1]}, exp=11)
    assert a.publish == ("p",) and a.subscribe == ("s",) and a.exp == 10.0
    with pytest.raises(AttributeError):
        a.publish = ("*",)
    with pytest.raises(AttributeError):
        del a.exp
    assert "Grants(publish=('p',)" in repr(a)
    assert copy.copy(a) == a and copy.deepcopy(a) == a
    restored = pickle.loads(pickle.dumps(a))
    assert restored == a and restored.key == a.key and restored.may_receive(["s"])
    assert Grants() == ANONYMOUS and not ANONYMOUS.publish and not ANONYMOUS.subscribe


def test_grants_refuse_what_would_grant_the_wrong_thing() -> None:
    with pytest.raises(TypeError, match="single string"):
        Grants(publish="*")
    with pytest.raises(TypeError, match="single string"):
        Grants(subscribe="users/42")
    with pytest.raises(TypeError, match="strings"):
        Grants(publish=[1])  # type: ignore[list-item]
    for exp in [math.nan, math.inf, "5", True]:
        with pytest.raises(TypeError, match="exp"):
            Grants(exp=exp)  # type: ignore[arg-type]


def test_grants_from_claims() -> None:
    claims = {
        "exp": 1234,
        "mercure": {"publish": ["a"], "subscribe": ["b/{x}"], "payload": {"user": "u1"}},
    }
    grants = Grants.from_claims(claims)
    assert grants == Grants(publish=["a"], subscribe=["b/{x}"], payload={"user": "u1"}, exp=1234)
    assert Grants.from_claims({}) == ANONYMOUS
    assert Grants.from_claims({"mercure": None}) == ANONYMOUS
    assert Grants.from_claims({"mercure": {"publish": None, "subscribe": []}}) == ANONYMOUS
    assert Grants.from_claims({"mercure": {"payload": [1, 2]}}).payload == [1, 2]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"mercure": []}, "token's mercure claim is not an object"),
        ({"mercure": "publish"}, "token's mercure claim is not an object"),
        ({"mercure": 1}, "token's mercure claim is not an object"),
        ({"mercure": {"publish": "*"}}, "token's mercure.publish claim is not a list of strings"),
        ({"mercure": {"publish": {"*": 1}}}, "token's mercure.publish claim is not a list"),
        ({"mercure": {"publish": ["*", 1]}}, "token's mercure.publish claim is not a list"),
        ({"mercure": {"subscribe": [None]}}, "token's mercure.subscribe claim is not a list"),
        ({"mercure": {"subscribe": True}}, "token's mercure.subscribe claim is not a list"),
        ({"exp": "tomorrow"}, "token's exp claim is not a number"),
    ],
)
def test_claims_of_the_wrong_shape_are_refused(claims: dict[str, Any], message: str) -> None:
    error = refused(lambda: Grants.from_claims(claims))
    assert error.status == 401
    assert error.message.startswith(message)


def test_check_publish_names_the_first_topic_not_granted() -> None:
    grants = Grants(publish=["orders", "users/{id}"])
    check_publish(grants, ["orders", "users/7"])
    check_publish(grants, "orders")
    error = refused(lambda: check_publish(grants, ["orders", "users/7/x", "payments"]))
    assert (error.status, error.message) == (
        403,
        "token does not allow publishing to topic 'users/7/x'",
    )
    assert error.challenge == 'Bearer error="insufficient_scope"'
    error = refused(lambda: check_publish(ANONYMOUS, ["orders"]))
    assert (error.status, error.message) == (
        403,
        "token does not allow publishing: its mercure.publish claim is empty",
    )


def test_auth_errors_carry_status_message_and_challenge() -> None:
    error = AuthError(401, "token has expired")
    assert (error.status, error.message, str(error)) == (
        401,
        "token has expired",
        "token has expired",
    )
    assert error.challenge == 'Bearer error="invalid_token"'
    assert AuthError(401, "x", challenge="Bearer").challenge == "Bearer"
    assert repr(error) == "AuthError(401, 'token has expired')"


# -- where the token comes from ------------------------------------------------------------------

HEADER = {"authorization": "Bearer from-header"}
QUERY = {"authorization": ["from-query"]}
COOKIE = {"cookie": "mercureAuthorization=from-cookie"}


def test_the_header_wins_then_the_query_then_the_cookie() -> None:
    assert find_token({**HEADER, **COOKIE}, QUERY) == ("from-header", TokenSource.HEADER)
    assert find_token(COOKIE, QUERY) == ("from-query", TokenSource.QUERY)
    assert find_token(COOKIE, {}) == ("from-cookie", TokenSource.COOKIE)
    assert find_token({}, {}) is None
    found = find_token(HEADER, {})
    assert isinstance(found, FoundToken)
    assert found.token == "from-header" and found.source == "header"


def test_the_authorization_header() -> None:
    assert find_token({"authorization": "bearer t1"}, {}) == ("t1", "header")
    assert find_token({"authorization": "BEARER   t1  "}, {}) == ("t1", "header")
    # another scheme carries no JWS: passed over
    assert find_token({"authorization": "Basic dXNlcjpwYXNz"}, QUERY) == ("from-query", "query")
    assert find_token({"authorization": "Bearer"}, QUERY) == ("from-query", "query")
    assert find_token({"authorization": "Bearer   "}, {}) is None
    # two joined Bearer headers are one malformed token, never a guess between them
    assert find_token({"authorization": "Bearer a.b.c, Bearer d.e.f"}, {}) == (
        "a.b.c, Bearer d.e.f",
        "header",
    )


def test_the_authorization_query_parameter() -> None:
    assert find_token({}, {"authorization": ["first", "second"]}) == ("first", "query")
    assert find_token({}, {"authorization": "whole"}) == ("whole", "query")
    assert find_token({}, {"authorization": [""]}) is None
    assert find_token({}, {"authorization": []}) is None
    assert find_token({}, {"Authorization": ["x"]}) is None  # query names are case-sensitive


@pytest.mark.parametrize(
    ("cookie", "token"),
    [
        ("mercureAuthorization=tok", "tok"),
        ("a=1; mercureAuthorization=tok; b=2", "tok"),
        ("a=1;mercureAuthorization=tok", "tok"),
        ("a=1, mercureAuthorization=tok", "tok"),  # repeated Cookie headers joined with ", "
        ('mercureAuthorization="tok"', "tok"),  # RFC 6265 DQUOTE-wrapped value
        ("mercureAuthorization=first; mercureAuthorization=second", "first"),
        ("  mercureAuthorization  =  tok  ", "tok"),
        ("mercureauthorization=tok", None),  # names are case-sensitive
        ("xmercureAuthorization=tok", None),
        ("mercureAuthorization", None),
        ("mercureAuthorization=", None),  # emptied to log out: no token
        ('mercureAuthorization=""', None),
        ("", None),
        (";;;,,,=;=", None),
        ('a="; mercureAuthorization=tok', "tok"),
        ("\x00\udcff=\ufffd; mercureAuthorization=tok", "tok"),
    ],
)
def test_the_cookie(cookie: str, token: str | None) -> None:
    found = find_token({"cookie": cookie}, {})
    assert (found.token if found else None) == token
    if found:
        assert found.source == TokenSource.COOKIE


def test_the_cookie_name_is_configurable() -> None:
    headers = {"cookie": "mercureAuthorization=default; hubB=mine"}
    assert find_token(headers, {}, cookie_name="hubB") == ("mine", "cookie")
    assert Policy(SECRET, cookie_name="hubB").find_token(headers, {}) == ("mine", "cookie")
    assert Policy(SECRET).find_token(headers, {}) == ("default", "cookie")


@given(
    headers=st.dictionaries(st.sampled_from(["authorization", "cookie", "x"]), st.text()),
    query=st.dictionaries(st.sampled_from(["authorization", "topic"]), st.lists(st.text())),
    cookie_name=st.sampled_from(["mercureAuthorization", "a", "="]),
)
def test_finding_a_token_never_raises(
    headers: dict[str, str], query: dict[str, list[str]], cookie_name: str
) -> None:
    found = find_token(headers, query, cookie_name)
    assert found is None or (isinstance(found.token, str) and found.token)


@given(
    value=st.text(alphabet="ABCabc012-_.~+/", min_size=1),
    before=st.lists(st.from_regex(r"[a-z]{1,5}=[a-z0-9]{0,5}", fullmatch=True), max_size=3),
)
def test_a_cookie_is_found_among_others(value: str, before: list[str]) -> None:
    header = "; ".join([*before, f"mercureAuthorization={value}", "z=1"])
    assert find_token({"cookie": header}, {}) == (value, "cookie")


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_signs_and_verifies(algorithm: str) -> None:
    signing, verifying = keys_for(algorithm)
    clock = Clock()
    policy = Policy(verifying, algorithm, clock=clock)
    token = mint_token(signing, algorithm, publish=["a"], subscribe=["b"], ttl=60, now=clock.now)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    grants = policy.publisher(token)
    assert grants == Grants(publish=["a"], subscribe=["b"], exp=math.ceil(NOW + 60))
    assert policy.subscriber(token) == grants


def test_es256_and_eddsa_keys_work_and_wrong_keys_do_not() -> None:
    for algorithm, kind, other in [
        ("ES256", "p256", "p256-other"),
        ("EdDSA", "ed25519", "ed448"),
        ("ES384", "p384", "p384-other"),
    ]:
        private, public = keypair(kind)
        policy = Policy(public, algorithm)
        assert policy.publisher(mint_token(private, algorithm, publish=["*"], ttl=60)).may_publish(
            "x"
        )
        if other == "ed448":
            ed_private, ed_public = keypair("ed448")
            assert Policy(ed_public, "EdDSA").subscriber(
                mint_token(ed_private, "EdDSA", subscribe=["s"], ttl=None)
            ) == Grants(subscribe=["s"])
            forged = mint_token(ed_private, "EdDSA", publish=["*"], ttl=60)
        else:
            other_key = ec.generate_private_key(
                ec.SECP256R1() if algorithm == "ES256" else ec.SECP384R1()
            )
            forged = jwt.encode({"mercure": {"publish": ["*"]}}, other_key, algorithm=algorithm)
        error = refused(lambda: policy.publisher(forged))  # noqa: B023
        assert (error.status, error.message) == (401, "token signature is invalid")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_token(OTHER_SECRET, publish=["*"], ttl=60)
    error = refused(lambda: Policy(SECRET).publisher(token))
    assert (error.status, error.message) == (401, "token signature is invalid")
    assert error.challenge == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"mercure": {"publish": ["*"]}}, None, algorithm="none"),  # type: ignore[arg-type]
        f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(b'{}')}.",
        f"{b64(json.dumps({'alg': 'None', 'typ': 'JWT'}).encode())}.{b64(b'{}')}.",
        f"{b64(json.dumps({'alg': 'NONE'}).encode())}.{b64(b'{}')}.c2ln",
        f"{b64(json.dumps({'alg': ''}).encode())}.{b64(b'{}')}.",
        f"{b64(json.dumps({'typ': 'JWT'}).encode())}.{b64(b'{}')}.",
        f"{b64(json.dumps({'alg': ['HS256']}).encode())}.{b64(b'{}')}.",
        mint_token(SECRET, "HS512", publish=["*"], ttl=60),
        mint_token(keypair("rsa")[0], "RS256", publish=["*"], ttl=60),
    ],
)
def test_the_algorithm_is_the_servers_never_the_tokens(token: str) -> None:
    error = refused(lambda: Policy(SECRET, "HS256").publisher(token))
    assert error.status == 401
    assert error.message in (
        "token algorithm is not allowed (this hub expects HS256)",
        "token is malformed",
    )


def test_algorithm_confusion_is_refused() -> None:
    # The classic attack: the hub verifies RS256 with a public key that everyone may know; an
    # attacker signs an HS256 token using that public key's PEM text as the HMAC secret.
    _, public = keypair("rsa")
    policy = Policy(public, "RS256")
    forged = hs256({"alg": "HS256", "typ": "JWT"}, {"mercure": {"publish": ["*"]}}, public)
    error = refused(lambda: policy.publisher(forged))
    assert (error.status, error.message) == (
        401,
        "token algorithm is not allowed (this hub expects RS256)",
    )
    # ... and claiming RS256 in the header does not make an HMAC signature an RSA one.
    relabelled = hs256({"alg": "RS256"}, {"mercure": {"publish": ["*"]}}, public)
    assert refused(lambda: policy.publisher(relabelled)).message == "token signature is invalid"
    # The setup itself (an HS algorithm with a PEM key as its secret) is refused at construction.
    with pytest.raises(ValueError, match="not a PEM"):
        Policy(public, "HS256")


def test_keys_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    token = mint_token(SECRET, publish=["*"], ttl=60)
    assert Policy(f"@{secret_file}").publisher(token).may_publish("x")
    # the trailing newline of the file is no part of the secret, on either side
    assert Policy(SECRET).publisher(mint_token(f"@{secret_file}", publish=["*"], ttl=60))
    secret_file.write_text(SECRET + "\r\n")
    assert Policy(f"@{secret_file}").publisher(token).may_publish("x")
    secret_file.write_bytes(SECRET.encode() + b"\n\n")  # only one newline is dropped
    error = refused(lambda: Policy(f"@{secret_file}").publisher(token))
    assert error.message == "token signature is invalid"
    assert Policy(SECRET.encode()).publisher(token).may_publish("x")

    private, public = keypair("p256")
    (tmp_path / "public.pem").write_text(public)
    (tmp_path / "private.pem").write_text(private)
    token = mint_token(f"@{tmp_path / 'private.pem'}", "ES256", subscribe=["s"], ttl=60)
    assert Policy(f"@{tmp_path / 'public.pem'}", "ES256").subscriber(token).subscribe == ("s",)


def test_a_secret_from_a_file_with_its_newline_is_not_the_inline_secret(tmp_path: Path) -> None:
    # Inline secrets are taken exactly: a newline there is part of the secret.
    with_newline = SECRET + "\n"
    token = mint_token(with_newline, publish=["*"], ttl=60)
    assert Policy(with_newline).publisher(token).may_publish("x")
    assert refused(lambda: Policy(SECRET).publisher(token)).message == "token signature is invalid"


def test_publisher_and_subscriber_keys_are_separate_and_fall_back_to_the_common_key() -> None:
    es_private, es_public = keypair("p256")
    policy = Policy(
        SECRET,
        publisher_key=es_public,
        publisher_algorithm="ES256",
    )
    assert (policy.publisher_algorithm, policy.subscriber_algorithm) == ("ES256", "HS256")
    publisher_token = mint_token(es_private, "ES256", publish=["*"], ttl=60)
    subscriber_token = mint_token(SECRET, subscribe=["*"], ttl=60)
    assert policy.publisher(publisher_token).may_publish("x")
    assert policy.subscriber(subscriber_token).may_receive(["x"])
    assert refused(lambda: policy.subscriber(publisher_token)).status == 401
    assert refused(lambda: policy.publisher(subscriber_token)).status == 401

    both = Policy(publisher_key=SECRET, subscriber_key=OTHER_SECRET)
    assert both.publisher(mint_token(SECRET, publish=["*"], ttl=60)).may_publish("x")
    assert refused(lambda: both.subscriber(mint_token(SECRET, subscribe=["*"], ttl=60)))
    assert both.subscriber(mint_token(OTHER_SECRET, subscribe=["*"], ttl=60)).may_receive("x")


def test_the_algorithm_name_is_case_insensitive_and_hs256_is_the_default() -> None:
    assert Policy(SECRET).publisher_algorithm == "HS256"
    assert Policy(SECRET, "hs384").publisher_algorithm == "HS384"
    assert Policy(keypair("ed25519")[1], "eddsa").subscriber_algorithm == "EdDSA"
    assert "HS384" in repr(Policy(SECRET, "hs384"))
    assert SECRET not in repr(Policy(SECRET))


NO_KEY = "\x00no key text\x00"


def bad_configurations(tmp_path: Path) -> list[tuple[Callable[[], object], str, str]]:
    """(what to call, expected message part, key text that must not appear)."""
    rsa_private, rsa_public = keypair("rsa")
    _, small_rsa = keypair("rsa1024")
    _, p384 = keypair("p384")
    _, ed = keypair("ed25519")
    short = "too-short-secret"
    return [
        (lambda: Policy(SECRET, "none"), "unknown algorithm 'none'", SECRET),
        (lambda: Policy(SECRET, "HS1024"), "use one of HS256", SECRET),
        (lambda: Policy(SECRET, "PS256"), "unknown algorithm", SECRET),
        (lambda: Policy(short), "the HMAC secret is 16 bytes; HS256 needs at least 32", short),
        (lambda: Policy("x" * 40, "HS512"), "HS512 needs at least 64", "x" * 40),
        (lambda: Policy(""), "the HMAC secret is empty", NO_KEY),
        (lambda: Policy(SECRET + "\udc80"), "not valid Unicode", "\udc80"),
        (lambda: Policy(42), "a key is a string", "42"),  # type: ignore[arg-type]
        (lambda: Policy(rsa_public), "not a PEM", rsa_public[30:60]),
        (lambda: Policy("ssh-rsa AAAAB3NzaC1yc2E" + "A" * 40), "not a PEM/SSH key", "AAAAB3"),
        (lambda: Policy(SECRET, "RS256"), "not an unencrypted PEM public key", SECRET),
        (lambda: Policy(rsa_private, "RS256"), "this is a private key", rsa_private[40:80]),
        (lambda: Policy(p384, "RS256"), "RS256 needs an RSA key, not an EC key", p384[30:60]),
        (lambda: Policy(rsa_public, "ES256"), "ES256 needs an EC key", rsa_public[30:60]),
        (lambda: Policy(p384, "ES256"), "ES256 needs a secp256r1 key, not secp384r1", p384[30:60]),
        (lambda: Policy(rsa_public, "EdDSA"), "EdDSA needs an Ed25519 or Ed448 key", "MII"),
        (lambda: Policy(small_rsa, "RS256"), "1024 bits; at least 2048", small_rsa[30:60]),
        (lambda: Policy(ed, "ES256"), "ES256 needs an EC key", ed[30:50]),
        (lambda: Policy(f"@{tmp_path}/missing"), "cannot read key file", NO_KEY),
        (lambda: Policy(f"@{tmp_path}"), "cannot read key file", NO_KEY),
        (lambda: Policy(), "no key for publishers", NO_KEY),
        (lambda: Policy(publisher_key=SECRET), "subscriber_key: no key for subscribers", SECRET),
        (lambda: Policy(SECRET, subscriber_algorithm="XS1"), "subscriber_algorithm", SECRET),
        (lambda: Policy(SECRET, publisher_key=short), "publisher_key: the HMAC secret", short),
        (lambda: Policy(SECRET, leeway=-1), "leeway", SECRET),
        (lambda: Policy(SECRET, leeway=math.nan), "leeway", SECRET),
        (lambda: Policy(SECRET, cache_size=-1), "cache_size", SECRET),
        (lambda: Policy(SECRET, cookie_name="a b"), "cookie_name", SECRET),
        (lambda: Policy(SECRET, cookie_name=""), "cookie_name", SECRET),
        (lambda: mint_token(rsa_public, "RS256", ttl=1), "this is a public key", "MII"),
        (lambda: mint_token(SECRET, "none", ttl=1), "unknown algorithm", SECRET),
        (lambda: mint_token(short, ttl=1), "HS256 needs at least 32", short),
        (lambda: mint_token(SECRET, ttl=0), "ttl", SECRET),
        (lambda: mint_token(SECRET, ttl=-5), "ttl", SECRET),
        (lambda: mint_token(SECRET, ttl=math.inf), "ttl", SECRET),
        (lambda: mint_token(SECRET, ttl=True), "ttl", SECRET),
    ]


def test_bad_configurations_are_one_clear_line_that_never_quotes_the_key(tmp_path: Path) -> None:
    for call, message, secret in bad_configurations(tmp_path):
        with pytest.raises(ValueError) as caught:
            call()
        text = str(caught.value)
        assert message in text, (message, text)
        assert "\n" not in text
        assert secret not in text


def test_an_encrypted_private_key_is_refused_for_minting() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        mint_token(pem, "ES256", ttl=60)


# -- time: exp, nbf, iat, leeway ----------------------------------------------------------------


def test_expiry_with_leeway() -> None:
    clock = Clock()
    policy = Policy(SECRET, clock=clock)  # leeway 5 s
    assert policy.publisher(hs256({"alg": "HS256"}, {"exp": NOW - 4.9}))
    error = refused(lambda: policy.publisher(hs256({"alg": "HS256"}, {"exp": NOW - 5})))
    assert (error.status, error.message) == (401, "token has expired")
    strict = Policy(SECRET, leeway=0, clock=clock)
    assert strict.publisher(hs256({"alg": "HS256"}, {"exp": NOW + 0.5}))
    assert refused(lambda: strict.publisher(hs256({"alg": "HS256"}, {"exp": NOW}))).message == (
        "token has expired"
    )
    lenient = Policy(SECRET, leeway=60, clock=clock)
    assert lenient.publisher(hs256({"alg": "HS256"}, {"exp": NOW - 59}))


def test_a_token_without_exp_is_accepted() -> None:
    grants = Policy(SECRET).publisher(mint_token(SECRET, publish=["*"], ttl=None))
    assert grants.exp is None and grants.may_publish("x")


def test_not_before_and_issued_at_in_the_future() -> None:
    clock = Clock()
    policy = Policy(SECRET, clock=clock)
    assert policy.subscriber(hs256({"alg": "HS256"}, {"nbf": NOW + 4.9}))
    error = refused(lambda: policy.subscriber(hs256({"alg": "HS256"}, {"nbf": NOW + 6})))
    assert (error.status, error.message) == (401, "token is not valid yet")
    assert policy.subscriber(hs256({"alg": "HS256"}, {"iat": NOW + 4}))
    error = refused(lambda: policy.subscriber(hs256({"alg": "HS256"}, {"iat": NOW + 600})))
    assert (error.status, error.message) == (401, "token was issued in the future")
    clock.now += 600
    assert policy.subscriber(hs256({"alg": "HS256"}, {"nbf": NOW + 6, "iat": NOW + 600}))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1700000000", True, None, [1], {"t": 1}, "NaN", "Infinity"])
def test_time_claims_must_be_numbers(claim: str, value: Any) -> None:
    if value in ("NaN", "Infinity"):  # Python's JSON reader accepts these bare words
        body = f'{{"{claim}": {value}}}'.encode()
    else:
        body = json.dumps({claim: value}).encode()
    token = hs256({"alg": "HS256"}, body)
    if value is None:  # JSON null: no such claim
        assert Policy(SECRET).publisher(token) == ANONYMOUS
        return
    error = refused(lambda: Policy(SECRET).publisher(token))
    assert (error.status, error.message) == (401, f"token's {claim} claim is not a number")


# -- no token, bad tokens -----------------------------------------------------------------------


def test_no_token() -> None:
    policy = Policy(SECRET)
    for role in (policy.publisher, policy.subscriber):
        for token in (None, ""):
            error = refused(lambda: role(token))  # noqa: B023
            assert error.status == 401
            assert error.message.startswith("no token: send Authorization: Bearer <jwt>")
            assert error.challenge == "Bearer"
    assert "mercureAuthorization cookie" in refused(lambda: policy.subscriber(None)).message
    anonymous = Policy(SECRET, allow_anonymous=True)
    assert anonymous.subscriber(None) is ANONYMOUS
    assert anonymous.subscriber("") is ANONYMOUS
    # publishers are never anonymous
    assert refused(lambda: anonymous.publisher(None)).status == 401


def test_a_bad_token_is_refused_even_when_anonymous_subscribers_are_allowed() -> None:
    policy = Policy(SECRET, allow_anonymous=True)
    error = refused(lambda: policy.subscriber(mint_token(OTHER_SECRET, subscribe=["*"], ttl=60)))
    assert error.message == "token signature is invalid"


GARBAGE = [
    "abc",
    "a.b",
    "a.b.c",
    "...",
    "a.b.c.d",
    "Bearer x.y.z",
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ",
    "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.",
    "eyJhbGciOiJIUzI1NiJ9.!!!.sig",
    "\x00.\x01.\x02",
    "\ud800.\udfff.x",
    "é.ü.ß",
    "a, Bearer b",
    hs256(["not", "an", "object"], {}),
    hs256({"alg": "HS256"}, b"not json"),
    hs256({"alg": "HS256"}, b"[1, 2]"),
    hs256({"alg": "HS256"}, b'"string"'),
    hs256({"alg": "HS256"}, b"[" * 100_000 + b"]" * 100_000),
    hs256({"alg": "HS256"}, b'{"a": ' + b"9" * 5000 + b"}"),
    hs256({"alg": "HS256", "kid": 1}, {}),
    hs256({"alg": "HS256", "crit": ["exp"]}, {}),
    hs256({"alg": "HS256", "crit": "b64"}, {}),
    hs256({"alg": "HS256", "b64": False}, {}),
    hs256({"alg": "HS256"}, {"sub": 1}),
    hs256({"alg": "HS256"}, {"jti": {}}),
    hs256({"alg": "HS256"}, {"mercure": [1]}),
    hs256({"alg": "HS256"}, {"mercure": {"publish": [{"match": "*"}]}}),
]


@pytest.mark.parametrize("token", GARBAGE)
def test_garbage_tokens_are_refused_with_401(token: str) -> None:
    policy = Policy(SECRET, allow_anonymous=True)
    for role in (policy.publisher, policy.subscriber):
        assert isinstance(outcome(lambda: role(token)), AuthError)  # noqa: B023


def test_a_token_that_is_too_long_is_refused_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_decodes(monkeypatch)
    token = mint_token(SECRET, publish=["*"], payload="x" * MAX_TOKEN_LENGTH, ttl=60)
    error = refused(lambda: Policy(SECRET).publisher(token))
    assert (error.status, error.message) == (
        401,
        f"token is too long (over {MAX_TOKEN_LENGTH} characters)",
    )
    assert calls == []


def test_a_token_that_is_not_a_string_is_refused() -> None:
    error = refused(lambda: Policy(SECRET).publisher(b"a.b.c"))  # type: ignore[arg-type]
    assert (error.status, error.message) == (401, "token is malformed")


def test_a_valid_token_without_the_grant_gets_403_from_check_publish() -> None:
    grants = Policy(SECRET).publisher(mint_token(SECRET, publish=["orders"], ttl=60))
    check_publish(grants, ["orders"])
    assert refused(lambda: check_publish(grants, ["payments"])).status == 403
    no_claim = Policy(SECRET).publisher(mint_token(SECRET, subscribe=["*"], ttl=60))
    assert refused(lambda: check_publish(no_claim, ["orders"])).status == 403


def test_the_payload_and_exp_reach_the_grants() -> None:
    clock = Clock()
    token = mint_token(
        SECRET,
        subscribe=["users/{id}"],
        payload={"user": "u1", "groups": [1, 2]},
        ttl=30.2,
        now=NOW,
    )
    grants = Policy(SECRET, clock=clock).subscriber(token)
    assert grants.payload == {"user": "u1", "groups": [1, 2]}
    assert grants.exp == math.ceil(NOW + 30.2)
    assert grants.may_receive(["users/7"])


def test_minted_claims() -> None:
    token = mint_token(SECRET, publish=("a",), subscribe=["b", "c"], payload=0, ttl=10, now=100.5)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "mercure": {"publish": ["a"], "subscribe": ["b", "c"], "payload": 0},
        "iat": 100,
        "exp": 111,
    }
    bare = jwt.decode(mint_token(SECRET, ttl=None), options={"verify_signature": False})
    assert set(bare) == {"mercure", "iat"} and bare["mercure"] == {}
    with pytest.raises(TypeError, match="single string"):
        mint_token(SECRET, publish="*", ttl=10)
    with pytest.raises(TypeError):
        mint_token(SECRET)  # type: ignore[call-arg]  # ttl must be said, even if None


# -- the token cache ---------------------------------------------------------------------------


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token that reaches PyJWT's decode (a signature verification), in order."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def test_a_verified_token_is_verified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    policy = Policy(SECRET)
    token = mint_token(SECRET, publish=["*"], subscribe=["s"], ttl=60)
    first = policy.publisher(token)
    assert policy.publisher(token) is first
    assert policy.subscriber(token) is first  # one key for both roles: one cache
    assert len(calls) == 1
    assert policy.verifications == 1
    assert policy.cached_tokens == 1


def test_failures_are_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    policy = Policy(SECRET)
    bad = mint_token(OTHER_SECRET, publish=["*"], ttl=60)
    for _ in range(3):
        refused(lambda: policy.publisher(bad))
    assert len(calls) == 3
    assert policy.cached_tokens == 0


def test_a_cached_token_is_dropped_when_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    clock = Clock()
    policy = Policy(SECRET, leeway=5, clock=clock)
    token = mint_token(SECRET, publish=["*"], ttl=60, now=NOW)
    exp = math.ceil(NOW + 60)
    policy.publisher(token)
    clock.now = exp + 5 - 0.001  # still inside the leeway: served from the cache
    assert policy.publisher(token).may_publish("x")
    assert len(calls) == 1
    clock.now = exp + 5  # from here a fresh verification would refuse it: so does the cache
    assert refused(lambda: policy.publisher(token)).message == "token has expired"
    assert len(calls) == 2
    assert policy.cached_tokens == 0


def test_a_cached_token_is_dropped_at_exp_without_leeway(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    clock = Clock()
    policy = Policy(SECRET, leeway=0, clock=clock)
    token = hs256({"alg": "HS256"}, {"exp": NOW + 10, "mercure": {"subscribe": ["*"]}})
    assert policy.subscriber(token).exp == NOW + 10
    clock.now = NOW + 9.999
    policy.subscriber(token)
    clock.now = NOW + 10
    assert refused(lambda: policy.subscriber(token)).message == "token has expired"
    assert len(calls) == 2


def test_the_cache_is_bounded_and_keeps_the_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    policy = Policy(SECRET, cache_size=2)
    a, b, c = (mint_token(SECRET, publish=[name], ttl=60) for name in "abc")
    policy.publisher(a)
    policy.publisher(b)
    policy.publisher(a)  # a is now the most recently used
    policy.publisher(c)  # evicts b
    assert calls == [a, b, c]
    assert policy.cached_tokens == 2
    policy.publisher(a)
    policy.publisher(c)
    assert calls == [a, b, c]
    policy.publisher(b)
    assert calls == [a, b, c, b]


def test_a_zero_cache_verifies_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    policy = Policy(SECRET, cache_size=0)
    token = mint_token(SECRET, publish=["*"], ttl=60)
    policy.publisher(token)
    policy.publisher(token)
    assert len(calls) == 2
    assert policy.cached_tokens == 0


def test_separate_keys_keep_separate_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    # the same secret, given twice (as text and as bytes): two roles, two caches
    policy = Policy(publisher_key=SECRET, subscriber_key=SECRET.encode())
    token = mint_token(SECRET, publish=["*"], subscribe=["*"], ttl=60)
    policy.publisher(token)
    policy.subscriber(token)
    policy.publisher(token)
    policy.subscriber(token)
    assert len(calls) == 2
    assert policy.verifications == 2
    assert policy.cached_tokens == 2
    # one key object for both roles is one verifier: one cache
    shared = Policy(publisher_key=SECRET, subscriber_key=SECRET)
    shared.publisher(token)
    shared.subscriber(token)
    assert len(calls) == 3


def test_a_policy_is_frozen() -> None:
    policy = Policy(SECRET)
    with pytest.raises(AttributeError):
        policy.allow_anonymous = True
    assert policy.leeway == 5.0 and policy.cookie_name == "mercureAuthorization"


# -- nothing but Grants or AuthError, whatever the token -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
selector_lists = st.one_of(
    json_values,
    st.lists(st.text(alphabet="ab{}/*.", max_size=8), max_size=4),
    st.lists(json_values, max_size=3),
)
mercure_claims = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={"publish": selector_lists, "subscribe": selector_lists, "payload": json_values},
    ),
)
claim_sets = st.fixed_dictionaries(
    {},
    optional={
        "mercure": mercure_claims,
        "exp": st.one_of(json_values, st.floats(NOW - 100, NOW + 100)),
        "nbf": st.one_of(json_values, st.floats(NOW - 100, NOW + 100)),
        "iat": st.one_of(json_values, st.floats(NOW - 100, NOW + 100)),
        "sub": json_values,
        "aud": json_values,
        "jti": json_values,
    },
)
POLICY = Policy(SECRET, allow_anonymous=True, clock=Clock())


# Every message a bad token can get: fixed texts, so none can echo the token or the key.
MESSAGES_401 = {
    "token is malformed",
    "token signature is invalid",
    "token algorithm is not allowed (this hub expects HS256)",
    "token has expired",
    "token is not valid yet",
    "token was issued in the future",
    "token is invalid",
    "token's sub claim is not a string",
    "token's jti claim is not a string",
    "token's exp claim is not a number",
    "token's nbf claim is not a number",
    "token's iat claim is not a number",
    "token's mercure claim is not an object",
    "token's mercure.publish claim is not a list of strings",
    "token's mercure.subscribe claim is not a list of strings",
    f"token is too long (over {MAX_TOKEN_LENGTH} characters)",
    "no token: send Authorization: Bearer <jwt>",  # "" is no token
}


def outcome(call: Callable[[], Grants]) -> Grants | AuthError:
    try:
        return call()
    except AuthError as error:
        assert error.status == 401
        assert error.message in MESSAGES_401
        return error


@settings(max_examples=300)
@given(token=st.text(max_size=200))
def test_any_string_is_grants_or_a_401(token: str) -> None:
    for role in (POLICY.publisher, POLICY.subscriber):
        outcome(lambda: role(token))  # noqa: B023


@settings(max_examples=300)
@given(claims=claim_sets)
def test_any_claims_signed_with_the_right_key_are_grants_or_a_401(claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    result = outcome(lambda: POLICY.publisher(token))
    if isinstance(result, Grants):
        mercure = claims.get("mercure") or {}
        assert result.publish == tuple(mercure.get("publish") or ())
        assert result.subscribe == tuple(mercure.get("subscribe") or ())
        assert result.payload == mercure.get("payload")
        assert outcome(lambda: POLICY.subscriber(token)) is result  # cached


@settings(max_examples=200)
@given(header=st.dictionaries(st.text(max_size=6), json_values, max_size=4), claims=claim_sets)
def test_any_header_signed_with_the_right_key_is_grants_or_a_401(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    token = hs256({**header, "alg": "HS256"}, claims)
    outcome(lambda: POLICY.subscriber(token))
    outcome(lambda: POLICY.subscriber(hs256(header, claims)))


@given(token=st.text(alphabet="abcXYZ019-_.", max_size=120))
def test_base64url_shaped_garbage_is_grants_or_a_401(token: str) -> None:
    outcome(lambda: POLICY.publisher(token))


# -- sans-IO ---------------------------------------------------------------------------------------

AUTH = Path(ssehub.auth.__file__).parent
FORBIDDEN = {"asyncio", "socket", "ssl", "select", "selectors", "http", "urllib", "subprocess"}
FORBIDDEN_SSEHUB = {"server", "asgi", "wsgi", "api", "hub", "backends", "client", "_fanout", "cli"}


def test_the_package_imports_no_io_and_no_upper_layer() -> None:
    for path in sorted(AUTH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                assert parts[0] not in FORBIDDEN, f"{path.name} imports {name}"
                if parts[0] == "ssehub" and len(parts) > 1:
                    assert parts[1] == "auth", f"{path.name} imports {name}"
                    assert parts[1] not in FORBIDDEN_SSEHUB


def test_importing_the_package_loads_neither_pyjwt_nor_any_io() -> None:
    code = "import json, sys; import ssehub.auth; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    roots = {name.partition(".")[0] for name in loaded}
    assert not roots & (FORBIDDEN | {"jwt", "cryptography"}), sorted(roots & FORBIDDEN)
    assert not {f"ssehub.{name}" for name in FORBIDDEN_SSEHUB} & loaded


def test_the_public_names() -> None:
    assert sorted(ssehub.auth.__all__) == sorted(
        [
            "ALGORITHMS",
            "ANONYMOUS",
            "DEFAULT_ALGORITHM",
            "DEFAULT_COOKIE_NAME",
            "MAX_TOKEN_LENGTH",
            "AuthError",
            "FoundToken",
            "Grants",
            "Policy",
            "Selector",
            "TokenSource",
            "check_publish",
            "compile_selector",
            "find_token",
            "mint_token",
            "selector_matches",
        ]
    )
    for name in ssehub.auth.__all__:
        assert hasattr(ssehub.auth, name)
