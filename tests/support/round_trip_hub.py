"""`ssehub serve` on a store that needs I/O for every publish, as a user's own store would
(Redis, a database): the server must then wait for `Store.append` before it answers.

Publishing to the topic "refused" makes the store fail the whole write, as a store that has
lost its connection would. Run as a script; it listens on an ephemeral loopback port and says
where on stderr, like `ssehub serve --port 0`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ssehub.backends import MemoryStore
from ssehub.hub import Hub
from ssehub.model import Draft, Record
from ssehub.server import ServerConfig, serve


class RoundTripStore(MemoryStore):
    def append_now(self, drafts: Sequence[Draft]) -> None:  # type: ignore[override]
        return None  # never without I/O

    async def append(self, drafts: Sequence[Draft]) -> list[Record]:
        await asyncio.sleep(0)  # the round trip
        if any("refused" in draft.topics for draft in drafts):
            raise ConnectionError("the store refused the write")
        return super().append_now(drafts)


if __name__ == "__main__":
    serve(ServerConfig(port=0), hub=Hub(RoundTripStore()))
