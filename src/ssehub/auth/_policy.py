"""`Policy`: verifies publishers' and subscribers' JWTs into `Grants`; `mint_token` signs them."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from ssehub.auth._grants import ANONYMOUS, NO_TOKEN_CHALLENGE, AuthError, Grants
from ssehub.auth._keys import DEFAULT_ALGORITHM, jwt_module, load_key, normalize_algorithm
from ssehub.auth._requests import DEFAULT_COOKIE_NAME, FoundToken, find_token

__all__ = ["MAX_TOKEN_LENGTH", "Policy", "mint_token"]

#: Longer tokens are refused before any parsing (401): a Mercure token is a few hundred bytes,
#: and the cache keeps tokens by their text.
MAX_TOKEN_LENGTH = 16384

_Clock = Callable[[], float]


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # RFC 7519 §2: NumericDate is "A JSON numeric value representing the number of seconds from
    # 1970-01-01T00:00:00Z UTC until the specified UTC date/time". JSON true is no number, and
    # Python's JSON reader lets NaN and Infinity through, which would never expire.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(401, f"token's {name} claim is not a number")
    return float(value)


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> float | None:
    """Raise AuthError unless the token is valid at `now`; return its `exp` (None if absent)."""
    exp = _number(claims, "exp")
    nbf = _number(claims, "nbf")
    iat = _number(claims, "iat")
    # RFC 7519 §4.1.4: "The "exp" (expiration time) claim identifies the expiration time on or
    # after which the JWT MUST NOT be accepted for processing. [...] Implementers MAY provide for
    # some small leeway, usually no more than a few minutes, to account for clock skew."
    if exp is not None and now >= exp + leeway:
        raise AuthError(401, "token has expired")
    # RFC 7519 §4.1.5: "The "nbf" (not before) claim identifies the time before which the JWT
    # MUST NOT be accepted for processing."
    if nbf is not None and now + leeway < nbf:
        raise AuthError(401, "token is not valid yet")
    # As PyJWT does by default: a token issued in the future is not valid yet either.
    if iat is not None and now + leeway < iat:
        raise AuthError(401, "token was issued in the future")
    return exp


# PyJWT exception (by name: some are newer than PyJWT 2.8) -> the client's message, first match
# wins. PyJWT's own messages are not passed on: some quote parts of the token.
_REASONS = (
    ("InvalidSignatureError", "token signature is invalid"),
    ("InvalidAlgorithmError", "token algorithm is not allowed (this hub expects {algorithm})"),
    ("DecodeError", "token is malformed"),
    ("InvalidSubjectError", "token's sub claim is not a string"),
    ("InvalidJTIError", "token's jti claim is not a string"),
    ("PyJWTError", "token is invalid"),
)


def _reason(exc: Exception, errors: ModuleType, algorithm: str) -> str:
    for name, message in _REASONS:
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return message.format(algorithm=algorithm)
    return "token is malformed"


class _Verifier:
    """One role's key and algorithm, and the cache of the tokens it verified."""

    __slots__ = (
        "_cache",
        "_clock",
        "_key",
        "_leeway",
        "_lock",
        "_size",
        "algorithm",
        "verifications",
    )

    def __init__(
        self, key: Any, algorithm: str, leeway: float, cache_size: int, clock: _Clock
    ) -> None:
        self.algorithm = algorithm
        self._key = key
        self._leeway = leeway
        self._size = cache_size
        self._clock = clock
        # token -> (its grants, the time from which it is refused). Only successes are kept:
        # a failure costs the failing client, and caching failures would let garbage evict
        # the tokens of the clients that reconnect all day.
        self._cache: OrderedDict[str, tuple[Grants, float]] = OrderedDict()
        # The ASGI and native shells call from one event loop, but an app may call from worker
        # threads (a sync FastAPI route): OrderedDict moves are not atomic.
        self._lock = threading.Lock()
        self.verifications = 0

    def __len__(self) -> int:
        return len(self._cache)

    def grants(self, token: str) -> Grants:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(token)
            if cached is not None:
                if now < cached[1]:
                    self._cache.move_to_end(token)
                    return cached[0]
                del self._cache[token]  # past exp + leeway: verify again, which refuses it
        claims = self._decode(token)
        exp = _check_times(claims, now, self._leeway)
        grants = Grants.from_claims(claims)
        if self._size:
            # The entry lives exactly as long as a fresh verification would accept the token
            # (until exp + leeway), so the cache never changes an answer, only its cost.
            deadline = math.inf if exp is None else exp + self._leeway
            with self._lock:
                self._cache[token] = (grants, deadline)
                self._cache.move_to_end(token)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return grants

    def _decode(self, token: str) -> dict[str, Any]:
        jwt = jwt_module()
        self.verifications += 1
        try:
            # The algorithm is the server's, never the token's: PyJWT refuses any other `alg`
            # header, `none` included. RFC 8725 §3.1: "Libraries MUST enable the caller to
            # specify a supported set of algorithms and MUST NOT use any other algorithms when
            # performing cryptographic operations. [...] Moreover, each key MUST be used with
            # exactly one algorithm": one verifier is one key and one algorithm. The time
            # claims are checked by _check_times,
            # against the injectable clock (PyJWT reads the system clock).
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    # This hub has no audience or issuer of its own to check them against.
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": [],
                },
            )
        except Exception as exc:
            # PyJWT's errors, and anything else its parser may raise on hostile input (JSON
            # nested deep enough for RecursionError, a str that is no UTF-8): fail closed.
            raise AuthError(401, _reason(exc, jwt.exceptions, self.algorithm)) from None
        return claims


class Policy:
    """Who may publish and who receives private events, decided from Mercure-style JWTs.

    `key` is the HMAC secret (HS256/384/512; at least 32/48/64 bytes, RFC 7518 §3.2) or the
    PEM public key (RS256/384/512 with 2048 bits or more, ES256 on P-256, ES384 on P-384, EdDSA
    on Ed25519 or Ed448), given as text, as bytes, or as `@/path/to/file`, read once, here. A
    secret read from a file loses one trailing newline ("\n" or "\r\n"); a secret that itself
    begins with "@" is given from a file or as bytes. `algorithm` is the only one accepted.
    `publisher_key`/`publisher_algorithm` and `subscriber_key`/`subscriber_algorithm` override
    them for one role (each falls back to `key`/`algorithm`, as Mercure's `publisher_jwt`
    and `subscriber_jwt` do). Every role needs a key. Bad keys, algorithms or options:
    ValueError, one line, naming the argument and never quoting the key.

    `allow_anonymous`: a subscriber without a token gets ANONYMOUS grants (publishers always
    need one). `leeway`: seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    `cookie_name`: where browsers put the token. `cache_size`: verified tokens kept per role
    (0: none). `clock`: the time, in seconds since the epoch.
    """

    __slots__ = ("_publisher", "_subscriber", "allow_anonymous", "cookie_name", "leeway")

    def __init__(
        self,
        key: str | bytes | None = None,
        algorithm: str = DEFAULT_ALGORITHM,
        *,
        publisher_key: str | bytes | None = None,
        publisher_algorithm: str | None = None,
        subscriber_key: str | bytes | None = None,
        subscriber_algorithm: str | None = None,
        allow_anonymous: bool = False,
        leeway: float = 5.0,
        cookie_name: str = DEFAULT_COOKIE_NAME,
        cache_size: int = 10_000,
        clock: _Clock = time.time,
    ) -> None:
        if isinstance(leeway, bool) or not isinstance(leeway, int | float):
            raise ValueError("leeway: a number of seconds")
        if not (math.isfinite(leeway) and leeway >= 0):
            raise ValueError("leeway: a number of seconds, 0 or more")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError("cache_size: a number of tokens, 0 or more")
        if (
            not isinstance(cookie_name, str)
            or not cookie_name
            or any(c in cookie_name for c in ' \t;,="')
        ):
            raise ValueError("cookie_name: a cookie name (no spaces, ';', ',', '=' or '\"')")
        self.allow_anonymous = bool(allow_anonymous)
        self.leeway = float(leeway)
        self.cookie_name = cookie_name
        common = normalize_algorithm(algorithm)
        verifiers: dict[tuple[int, str], _Verifier] = {}

        def verifier(
            role: str, role_key: str | bytes | None, role_algorithm: str | None
        ) -> _Verifier:
            chosen = key if role_key is None else role_key
            label = f"{role}_key" if role_key is not None else "key"
            if chosen is None:
                raise ValueError(f"{role}_key: no key for {role}s (give key or {role}_key)")
            name = (
                common
                if role_algorithm is None
                else normalize_algorithm(role_algorithm, f"{role}_algorithm")
            )
            # Both roles on the common key and algorithm share one verifier, and its cache.
            shared = (id(chosen), name)
            if shared not in verifiers:
                loaded = load_key(chosen, name, label)
                verifiers[shared] = _Verifier(loaded, name, self.leeway, cache_size, clock)
            return verifiers[shared]

        self._publisher = verifier("publisher", publisher_key, publisher_algorithm)
        self._subscriber = verifier("subscriber", subscriber_key, subscriber_algorithm)

    @property
    def publisher_algorithm(self) -> str:
        return self._publisher.algorithm

    @property
    def subscriber_algorithm(self) -> str:
        return self._subscriber.algorithm

    @property
    def verifications(self) -> int:
        """How many tokens were checked by signature so far (cache misses)."""
        if self._publisher is self._subscriber:
            return self._publisher.verifications
        return self._publisher.verifications + self._subscriber.verifications

    @property
    def cached_tokens(self) -> int:
        if self._publisher is self._subscriber:
            return len(self._publisher)
        return len(self._publisher) + len(self._subscriber)

    def find_token(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
    ) -> FoundToken | None:
        """`find_token` with this policy's cookie name."""
        return find_token(headers, query, self.cookie_name)

    def publisher(self, token: str | None) -> Grants:
        """The grants of a publisher's token; AuthError 401 when there is none or it is not
        valid. Checking them against the topics is `check_publish`'s job (403)."""
        if not token:  # None, or "": an empty credential is no credential
            raise AuthError(
                401, "no token: send Authorization: Bearer <jwt>", challenge=NO_TOKEN_CHALLENGE
            )
        return self._verify(self._publisher, token)

    def subscriber(self, token: str | None) -> Grants:
        """The grants of a subscriber's token. No token: ANONYMOUS when anonymous subscribers
        are allowed, else AuthError 401. A token that is not valid is refused (401) even then:
        a client that sends a token expects it to count (as Mercure's hub does)."""
        if not token:
            if self.allow_anonymous:
                return ANONYMOUS
            raise AuthError(
                401,
                "no token: send Authorization: Bearer <jwt>, the authorization query parameter "
                f"or the {self.cookie_name} cookie",
                challenge=NO_TOKEN_CHALLENGE,
            )
        return self._verify(self._subscriber, token)

    @staticmethod
    def _verify(verifier: _Verifier, token: str) -> Grants:
        if not isinstance(token, str):
            raise AuthError(401, "token is malformed")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError(401, f"token is too long (over {MAX_TOKEN_LENGTH} characters)")
        return verifier.grants(token)

    def __repr__(self) -> str:
        return (
            f"Policy(publisher_algorithm={self.publisher_algorithm!r}, "
            f"subscriber_algorithm={self.subscriber_algorithm!r}, "
            f"allow_anonymous={self.allow_anonymous!r}, leeway={self.leeway!r}, "
            f"cookie_name={self.cookie_name!r})"
        )

    def __setattr__(self, name: str, value: object) -> None:
        # Frozen once built: a policy shared by the shells must not change under them.
        if hasattr(self, "_subscriber"):
            raise AttributeError(f"a Policy is frozen: cannot set {name}")
        object.__setattr__(self, name, value)


def mint_token(
    key: str | bytes,
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    publish: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    payload: Any = None,
    ttl: float | None,
    now: float | None = None,
) -> str:
    """A signed JWT with Mercure's claims: `{"mercure": {"publish": [...], "subscribe": [...],
    "payload": ...}, "iat": now, "exp": now + ttl}` (keys left out when empty or None; no
    `exp` when `ttl` is None: a token that never expires has to be asked for by name).

    `key`: the HMAC secret, or for RS/ES/EdDSA the PEM *private* key; inline or
    `@/path/to/file`. `now`: the issue time (default: the system clock). ValueError for a bad
    key, algorithm or ttl; TypeError when publish/subscribe is a single string.
    """
    name = normalize_algorithm(algorithm)
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int | float) or not (0 < ttl < math.inf)
    ):
        raise ValueError("ttl: a positive number of seconds, or None for no expiry")
    grants = Grants(publish=publish, subscribe=subscribe, payload=payload)
    signing_key = load_key(key, name, private=True)
    issued = time.time() if now is None else now
    mercure: dict[str, Any] = {}
    if grants.publish:
        mercure["publish"] = list(grants.publish)
    if grants.subscribe:
        mercure["subscribe"] = list(grants.subscribe)
    if payload is not None:
        mercure["payload"] = payload
    claims: dict[str, Any] = {"mercure": mercure, "iat": math.floor(issued)}
    if ttl is not None:
        # A whole number of seconds (some JWT libraries refuse fractions), rounded up so the
        # token lives at least `ttl`.
        claims["exp"] = math.ceil(issued + ttl)
    token: str = jwt_module().encode(claims, signing_key, algorithm=name)
    return token
