"""Typing stub of ssehub._wire_c, the C accelerator of ssehub.wire (see there)."""

from collections.abc import Callable

from ssehub.wire import Event

class Decoder:
    last_event_id: str
    retry: int | None
    def __init__(self, last_event_id: str = "") -> None: ...
    def feed(self, chunk: bytes) -> list[Event]: ...

def encode(event: Event) -> bytes: ...
def comment(text: str = "") -> bytes: ...
def _setup(
    event_class: type[Event],
    encode: Callable[[Event], bytes],
    comment: Callable[[str], bytes],
    retry_value: Callable[[str], int | None],
    /,
) -> None: ...
