"""ssehub: Server-Sent Events for Python, done right."""

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
