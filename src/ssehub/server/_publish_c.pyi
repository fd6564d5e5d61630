"""Typing stub of ssehub.server._publish_c, the fast path of a plain form publish (see there)."""

def parse(
    data: bytes, start: int, max_head: int, max_body: int, strict: bool, /
) -> tuple[int, bool, str, str, str, int | None, bytes, str | None, str] | None: ...
