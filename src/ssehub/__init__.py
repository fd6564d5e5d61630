"""ssehub: Server-Sent Events for Python, done right.

The names below are the public surface. They are imported when first used, so that importing
one part (`ssehub.wire`, `ssehub.wsgi`) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssehub.client import AsyncEventSource, EventSource, SSEError
    from ssehub.hub import Hub, SlowSubscriberError
    from ssehub.model import InvalidPublication, Publication
    from ssehub.wire import Decoder, Event, comment, encode

__all__ = [
    "AsyncEventSource",
    "Decoder",
    "Event",
    "EventSource",
    "Hub",
    "InvalidPublication",
    "Publication",
    "SSEError",
    "SlowSubscriberError",
    "comment",
    "encode",
]
__version__ = "0.1.0"

_HOMES = {
    "AsyncEventSource": "ssehub.client",
    "EventSource": "ssehub.client",
    "SSEError": "ssehub.client",
    "Hub": "ssehub.hub",
    "SlowSubscriberError": "ssehub.hub",
    "InvalidPublication": "ssehub.model",
    "Publication": "ssehub.model",
    "Decoder": "ssehub.wire",
    "Event": "ssehub.wire",
    "comment": "ssehub.wire",
    "encode": "ssehub.wire",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ssehub' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
