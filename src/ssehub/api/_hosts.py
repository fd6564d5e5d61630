"""Which `Host` names the hub answers to: a defence against DNS rebinding.

A page on another site can make its own domain name resolve to 127.0.0.1 and then talk to a hub
on the user's machine as if it were same-origin: the browser sends that domain in `Host`. A hub
bound to loopback therefore answers only `localhost`, loopback addresses and the names given with
`--allowed-host`; one bound elsewhere answers any name unless `--allowed-host` is given.
"""

from __future__ import annotations

import functools

from ssehub.api._access import is_loopback

__all__ = ["default_hosts", "host_allowed"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def default_hosts(bound: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    """The names a hub bound to `bound` answers to, with `--allowed-host` names; None: any."""
    if allowed:
        return frozenset(name.lower() for name in allowed)
    if is_loopback(bound) or bound == "localhost":
        return LOOPBACK_NAMES
    return None


@functools.lru_cache(maxsize=256)
def _name(host: str) -> str:
    """`Host` without its port: `example.com:8000` -> `example.com`, `[::1]:80` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    name = _name(host)
    if name in allowed or "*" in allowed:
        return True
    # With the loopback names allowed, any loopback address is (127.0.0.2, ::ffff:127.0.0.1).
    return "127.0.0.1" in allowed and name != "" and is_loopback(name)
