"""The hub's HTTP API, apart from any transport: one route table that every shell delegates to.

The native server (`ssehub.server`) and the ASGI app (`ssehub.asgi`) each turn their wire form
into a `Request`, call `Api.handle`, and turn the `Response` or `StreamReply` back into bytes or
messages. Routes, publish parsing, stream parameters, CORS, health and metrics live here once.
"""

from ssehub.api._access import Access, Authorize, is_loopback
from ssehub.api._cors import Cors
from ssehub.api._errors import ErrorLog
from ssehub.api._messages import (
    SSE_HEADERS,
    Handler,
    HTTPError,
    Reply,
    Request,
    Response,
    StreamReply,
    error_response,
    json_response,
)
from ssehub.api._metrics import Traffic
from ssehub.api._publish import (
    body_too_large,
    form_fields,
    ids_body,
    ids_response,
    parse_drafts,
    parse_publications,
    publication,
)
from ssehub.api._routes import Api, ApiConfig
from ssehub.api._streams import HEARTBEAT, last_event_id, opening, stream_topics
from ssehub.model import Audience

__all__ = [
    "HEARTBEAT",
    "SSE_HEADERS",
    "Access",
    "Api",
    "ApiConfig",
    "Audience",
    "Authorize",
    "Cors",
    "ErrorLog",
    "HTTPError",
    "Handler",
    "Reply",
    "Request",
    "Response",
    "StreamReply",
    "Traffic",
    "body_too_large",
    "error_response",
    "form_fields",
    "ids_body",
    "ids_response",
    "is_loopback",
    "json_response",
    "last_event_id",
    "opening",
    "parse_drafts",
    "parse_publications",
    "publication",
    "stream_topics",
]
