"""What a token allows (`Grants`), the one error type (`AuthError`) and the publish check."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ssehub.auth._selectors import Selector, compile_selector

__all__ = ["ANONYMOUS", "AuthError", "Grants", "check_publish"]


class AuthError(Exception):
    """A request is not authorized: `status` 401 (no usable token) or 403 (not granted).

    `message` is one short line for the client; it never contains the token nor the key.
    `challenge` is the `WWW-Authenticate` value to send with it (RFC 6750 §3).
    """

    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        if challenge is None:
            # RFC 6750 §3.1: invalid_token: "The access token provided is expired, revoked,
            # malformed, or invalid for other reasons. The resource SHOULD respond with the
            # HTTP 401 (Unauthorized) status code." insufficient_scope: "The request requires
            # higher privileges than provided by the access token. The resource server SHOULD
            # respond with the HTTP 403 (Forbidden) status code".
            error = "insufficient_scope" if status == 403 else "invalid_token"
            challenge = f'Bearer error="{error}"'
        self.challenge = challenge

    def __repr__(self) -> str:
        return f"AuthError({self.status}, {self.message!r})"


# RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the client was
# unaware that authentication is necessary or attempted using an unsupported authentication
# method), the resource server SHOULD NOT include an error code or other error information."
NO_TOKEN_CHALLENGE = "Bearer"


def _selectors(value: Iterable[str], what: str) -> tuple[str, ...]:
    # A bare string is an iterable of one-character strings: almost certainly a mistake that
    # would grant the wrong thing, so it is refused rather than iterated.
    if isinstance(value, str | bytes):
        raise TypeError(f"{what} must be an iterable of topic selectors, not a single string")
    selectors = tuple(value)
    for selector in selectors:
        if not isinstance(selector, str):
            raise TypeError(f"{what} selectors must be strings, not {type(selector).__name__}")
    return selectors


class Grants:
    """What a publisher or subscriber may do: frozen, hashable.

    - `publish`: the topic selectors it may publish to (Mercure's `mercure.publish`);
    - `subscribe`: the topic selectors of the private events it may receive
      (`mercure.subscribe`);
    - `payload`: `mercure.payload`, any JSON value, None when absent (treat it as read-only:
      a cached token hands the same object to every request bearing it);
    - `exp`: the token's expiry (seconds since the epoch), None when it has none. The Mercure
      draft: "If the presented JWS contains an expiration time in the standard `exp` claim
      defined in [RFC7519], the connection MUST be closed by the hub at that time."

    Equality compares all four fields; the hash leaves out `payload` (it may be a dict). Grants
    built from the same claims are equal.
    """

    __slots__ = ("_key", "_publish", "_subscribe", "exp", "payload", "publish", "subscribe")

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    payload: Any
    exp: float | None
    _publish: tuple[Selector, ...]
    _subscribe: tuple[Selector, ...]
    _key: frozenset[str]

    def __init__(
        self,
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        payload: Any = None,
        exp: float | None = None,
    ) -> None:
        publish = _selectors(publish, "publish")
        subscribe = _selectors(subscribe, "subscribe")
        if exp is not None:
            if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
                raise TypeError("exp must be a finite number of seconds since the epoch, or None")
            exp = float(exp)
        init = object.__setattr__
        init(self, "publish", publish)
        init(self, "subscribe", subscribe)
        init(self, "payload", payload)
        init(self, "exp", exp)
        init(self, "_publish", tuple(compile_selector(s) for s in publish))
        init(self, "_subscribe", tuple(compile_selector(s) for s in subscribe))
        # `*` matches every topic, so any set containing it receives what `{"*"}` receives.
        init(self, "_key", frozenset({"*"}) if "*" in subscribe else frozenset(subscribe))

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Grants:
        """The grants of a verified token's claims (the `mercure` claim and `exp`).

        The Mercure draft: the JWS "MUST contain a claim called `mercure`, and this claim
        MUST contain a `publish` key. `mercure.publish` contains an array of topic
        selectors"; for subscribers, "a claim named `mercure` with a key named `subscribe`
        that contains an array of topic selectors". A missing claim or key (or a JSON null,
        as Mercure's own hub reads it) grants nothing; a claim of the wrong shape is refused,
        AuthError 401, rather than read as no grants, so a token minted wrong fails loudly.
        `exp` is taken as it is: checking it is the verifier's job.
        """
        mercure = claims.get("mercure")
        if mercure is None:
            mercure = {}
        elif not isinstance(mercure, dict):
            _refuse("token's mercure claim is not an object")
        exp = claims.get("exp")
        if exp is not None and (
            isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp)
        ):
            _refuse("token's exp claim is not a number")
        return cls(
            publish=_claim_selectors(mercure, "publish"),
            subscribe=_claim_selectors(mercure, "subscribe"),
            payload=mercure.get("payload"),
            exp=exp,
        )

    @property
    def key(self) -> frozenset[str]:
        """Equal for grants whose subscribe selectors are the same set (`*` alone when they
        contain `*`): subscribers with equal keys receive the same private events, so they can
        share the same encoded bytes."""
        return self._key

    def may_publish(self, topic: str) -> bool:
        """True when a publish selector matches `topic`. The Mercure draft: "If
        `mercure.publish` is not defined, or contains an empty array, then the publisher MUST
        NOT be authorized to dispatch any update.\""""
        return any(selector.matches(topic) for selector in self._publish)

    def may_receive(self, topics: Iterable[str]) -> bool:
        """True when a subscribe selector matches at least one of a private event's topics. The
        Mercure draft: "The hub MUST check that at least one topic of the update to dispatch
        (canonical or alternate) matches at least one topic selector provided in
        `mercure.subscribe`.\""""
        if isinstance(topics, str):  # one topic, not an iterable of characters
            topics = (topics,)
        selectors = self._subscribe
        return bool(selectors) and any(s.matches(topic) for topic in topics for s in selectors)

    def __reduce__(self) -> tuple[type[Grants], tuple[Any, ...]]:
        # copy and pickle rebuild through __init__: the default slot restore would setattr.
        return (Grants, (self.publish, self.subscribe, self.payload, self.exp))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Grants are frozen: cannot set {name}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Grants are frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grants):
            return NotImplemented
        return (self.publish, self.subscribe, self.exp, self.payload) == (
            other.publish,
            other.subscribe,
            other.exp,
            other.payload,
        )

    def __hash__(self) -> int:
        return hash((self.publish, self.subscribe, self.exp))

    def __repr__(self) -> str:
        return (
            f"Grants(publish={self.publish!r}, subscribe={self.subscribe!r}, "
            f"payload={self.payload!r}, exp={self.exp!r})"
        )


def _refuse(message: str) -> NoReturn:
    raise AuthError(401, message)


def _claim_selectors(mercure: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = mercure.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _refuse(f"token's mercure.{key} claim is not a list of strings")
    return tuple(value)


#: No token: may publish nothing and receive no private event.
ANONYMOUS = Grants()


def check_publish(grants: Grants, topics: Iterable[str]) -> None:
    """Raise AuthError 403 unless `grants` may publish to every topic. The Mercure draft: "If
    the publisher is not authorized for all the topics of an update, the hub MUST NOT dispatch
    the update (even if some topics in the list are allowed) and MUST return a 403 HTTP status
    code.\""""
    if isinstance(topics, str):
        topics = (topics,)
    for topic in topics:
        if not grants.may_publish(topic):
            if not grants.publish:
                raise AuthError(
                    403, "token does not allow publishing: its mercure.publish claim is empty"
                )
            raise AuthError(403, f"token does not allow publishing to topic {topic!r}")
