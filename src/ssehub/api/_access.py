"""Who may publish, who may read, and what: the API's one authorization code path.

Every shell reaches these decisions through `Api`, so the native server, the ASGI app and an
app's own routes decide alike. Three ways to decide:

- a `Policy` (JWT, Mercure's claims: `ssehub.auth`): publishing needs a token whose publish
  selectors match every topic; reading needs a token unless anonymous readers are allowed, and
  private events reach only the subscribers whose subscribe selectors match one of their topics;
- an app's own `authorize(request) -> Grants` (a FastAPI app's `Depends(current_user)`), which
  may return an awaitable, and raise `HTTPError` or `AuthError` to refuse;
- neither (no key configured): publishing only from loopback addresses (and from Python in the
  same process, which does not come through here), public events for every reader.

`/metrics` answers loopback peers, or anyone showing the metrics token.
"""

from __future__ import annotations

import functools
import hmac
import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from ssehub.api._cors import Cors
from ssehub.api._messages import HTTPError, Request
from ssehub.auth import AuthError, Grants, Policy, TokenSource, check_publish

__all__ = ["Access", "Authorize", "is_loopback"]

#: An app's own decision: the grants of a request, or an awaitable of them.
Authorize = Callable[[Request], Grants | Awaitable[Grants]]


@functools.lru_cache(maxsize=1024)
def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; "" (a shell that knows no peer, such
    as a Unix socket) counts as local."""
    if not address:
        return True
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def refusal(error: AuthError) -> HTTPError:
    """An AuthError as the API's JSON error, with its `WWW-Authenticate` challenge."""
    headers = [("WWW-Authenticate", error.challenge)] if error.challenge else []
    return HTTPError(error.status, str(error), headers=headers)


class Access:
    def __init__(
        self,
        policy: Policy | None,
        authorize: Authorize | None,
        cors: Cors,
        metrics_token: str | None,
        trusted_proxies: frozenset[str] = frozenset(),
    ) -> None:
        self.policy = policy
        self.authorize = authorize
        self.cors = cors
        self.metrics_token = metrics_token
        self.trusted_proxies = trusted_proxies

    def client_of(self, request: Request) -> str:
        """The address a request comes from: the peer, or the client a trusted proxy names in
        X-Forwarded-For (its last entry, the one the proxy itself added). A request that names
        a forwarded client through a proxy that is not trusted comes from nowhere local: a
        proxy on this machine must not make everyone behind it a loopback publisher."""
        forwarded = request.headers.get("x-forwarded-for")
        if request.client in self.trusted_proxies and forwarded:
            return forwarded.rpartition(",")[2].strip()
        if forwarded or "forwarded" in request.headers or "x-real-ip" in request.headers:
            return f"a client behind {request.client or 'a proxy'} (not a --trusted-proxy)"
        return request.client

    @property
    def open(self) -> bool:
        """No key and no app decision: loopback publishers, public events only."""
        return self.policy is None and self.authorize is None

    def publisher(self, request: Request) -> Grants | Awaitable[Grants] | None:
        """The publisher's grants (None: loopback without a policy, may publish anything);
        HTTPError (401, 403) when it may not publish at all."""
        self.cors.check_publisher(request)
        if self.policy is not None:
            found = self.policy.find_token(request.headers, request.query)
            if found is not None and found.source is TokenSource.COOKIE:
                self._check_same_origin(request)
            try:
                return self.policy.publisher(found.token if found else None)
            except AuthError as error:
                raise refusal(error) from None
        if self.authorize is not None:
            return self._ask_app(request)
        client = self.client_of(request)
        if not is_loopback(client):
            raise HTTPError(
                403,
                f"publishing from {client} is refused: without --jwt-key this hub "
                "accepts publishes from loopback addresses only",
            )
        return None

    def subscriber(self, request: Request) -> Grants | Awaitable[Grants] | None:
        """The subscriber's grants (None: public events only); HTTPError 401 when it may not
        read at all."""
        if self.policy is not None:
            found = self.policy.find_token(request.headers, request.query)
            try:
                return self.policy.subscriber(found.token if found else None)
            except AuthError as error:
                raise refusal(error) from None
        if self.authorize is not None:
            return self._ask_app(request)
        return None

    def _ask_app(self, request: Request) -> Grants | Awaitable[Grants]:
        assert self.authorize is not None
        try:
            grants = self.authorize(request)
        except AuthError as error:
            raise refusal(error) from None
        return _refusing(grants) if inspect.isawaitable(grants) else grants

    def may_read_metrics(self, request: Request) -> None:
        if self.metrics_token is not None:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), self.metrics_token.encode()
            ):
                return
        if is_loopback(self.client_of(request)):
            return
        raise HTTPError(403, "metrics are served to loopback addresses, or with --metrics-token")

    def _check_same_origin(self, request: Request) -> None:
        """A cookie rides along with any page's request (CSRF): a publish it authenticates must
        come from an origin in the CORS allowlist, by its Origin or else its Referer."""
        origin = request.headers.get("origin")
        if origin is None:
            referer = urlsplit(request.headers.get("referer", ""))
            origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
        if origin is None or origin not in self.cors.origins:  # an explicit origin: never "*"
            raise HTTPError(
                403,
                "a publish authenticated by cookie must come from an allowed origin "
                "(Origin or Referer in --cors-origin)",
            )


async def _refusing(grants: Awaitable[Grants]) -> Grants:
    """An app's awaitable decision, its AuthError as the API's refusal."""
    try:
        return await grants
    except AuthError as error:
        raise refusal(error) from None


def check_topics(grants: Grants, topics: Iterable[str]) -> None:
    """403 unless `grants` may publish to every topic."""
    try:
        check_publish(grants, topics)
    except AuthError as error:
        raise refusal(error) from None
