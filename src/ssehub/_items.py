"""What a stream's items become on the wire: shared by the ASGI and WSGI responses."""

from __future__ import annotations

import json

from ssehub.wire import Event, encode

__all__ = ["encode_item"]


def encode_item(item: object) -> bytes:
    """The event-stream bytes for one item of a stream's content.

    `Event` → as is; `str` → its data; `bytes` → already encoded, sent untouched; an object with
    `model_dump_json()` (a pydantic model) → that JSON as data; anything else → JSON as data.
    """
    if isinstance(item, Event):
        return encode(item)
    if isinstance(item, str):
        return encode(Event(data=item))
    if isinstance(item, bytes):
        return item
    dump = getattr(item, "model_dump_json", None)
    if callable(dump):
        return encode(Event(data=str(dump())))
    return encode(Event(data=json.dumps(item, ensure_ascii=False, separators=(",", ":"))))
