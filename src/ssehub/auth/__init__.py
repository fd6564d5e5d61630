"""Authorization with Mercure's JWT claims: who may publish, who receives private events.

Sans-IO: nothing here opens a socket or touches an event loop; the only I/O is reading a key
file named `@/path/to/file`, once, when a `Policy` is built (or a token minted). The shells find
the token (`find_token`), ask the policy for the grants (`Policy.publisher` /
`Policy.subscriber`), check a publish (`check_publish`) and filter private events
(`Grants.may_receive`); an `AuthError` carries the status (401 or 403), a one-line message and
the `WWW-Authenticate` challenge.

```python
from ssehub.auth import Policy, check_publish, mint_token

policy = Policy("@/etc/ssehub/jwt.key")           # HS256; or Policy(pem, "ES256"), ...
found = policy.find_token(request.headers, request.query)     # header, query, then cookie
grants = policy.publisher(found.token if found else None)     # AuthError(401, ...) if bad
check_publish(grants, ["orders"])                             # AuthError(403, ...) if not granted
subscriber = policy.subscriber(None)              # ANONYMOUS if allow_anonymous, else 401
subscriber.may_receive(["users/42"])              # a private event's topics

token = mint_token(secret, publish=["*"], subscribe=["users/{id}"], ttl=3600)
```

A token's claims, as Mercure defines them (draft-dunglas-mercure-07, "Authorization"):
`{"mercure": {"publish": [selectors], "subscribe": [selectors], "payload": any}}`. Selectors are
`*`, exact topics, or RFC 6570 URI templates (`https://example.com/users/{id}`, `user.{id}`);
`ssehub.auth._selectors` says exactly what each template form matches. An app that decides by
itself builds `Grants(publish=("*",), subscribe=("user.42",))` directly.

`Selector`, `compile_selector`, `selector_matches`, `find_token` and the grants need only the
standard library; `Policy` and `mint_token` need PyJWT and cryptography (`pip install
'ssehub[jwt]'`), imported when first used.
"""

from ssehub.auth._grants import ANONYMOUS, AuthError, Grants, check_publish
from ssehub.auth._keys import ALGORITHMS, DEFAULT_ALGORITHM
from ssehub.auth._policy import MAX_TOKEN_LENGTH, Policy, mint_token
from ssehub.auth._requests import DEFAULT_COOKIE_NAME, FoundToken, TokenSource, find_token
from ssehub.auth._selectors import Selector, compile_selector, selector_matches

__all__ = [
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
