"""Ending every open event stream when the server is told to stop (see `ssehub.asgi`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from ssehub.asgi._engine import SHUTDOWN, Outbox

__all__ = ["end_streams", "register", "unregister"]


# Open streams by loop. Each loop's set is touched only on that loop's thread; other threads and
# signal handlers only list the loops and schedule work on them.
_open_streams: dict[asyncio.AbstractEventLoop, set[Outbox]] = {}
_ending_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_ending_everything = False
_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)


def end_streams(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """End the open event streams, and any opened later: those on `loop`, or all of them.

    ssehub does this itself (for all loops) when the server gets SIGTERM or SIGINT; see the
    module docstring. Call it when you stop a server from code — e.g. with uvicorn run in a
    thread: `server.should_exit = True; end_streams(server_loop)` — since the server will not
    stop while a stream is open. Safe from any thread and from signal handlers.
    """
    global _ending_everything
    if loop is None:
        _ending_everything = True
    loops = list(_open_streams) if loop is None else [loop]
    for each in loops:
        with contextlib.suppress(RuntimeError):  # that loop is closed: its streams are gone
            each.call_soon_threadsafe(_end_loop_streams, each)


def _end_loop_streams(loop: asyncio.AbstractEventLoop) -> None:
    _ending_loops.add(loop)
    for outbox in list(_open_streams.get(loop, ())):
        outbox.finish(SHUTDOWN)


class _EndStreamsThen:
    """A signal handler: end every stream, then do exactly what the server's handler does."""

    def __init__(self, server_handler: Callable[[int, FrameType | None], Any]) -> None:
        self.server_handler = server_handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        end_streams()
        self.server_handler(signum, frame)


def _observe_shutdown_signals() -> None:
    # A server installs its handlers before it serves, so by the time a stream opens they are in
    # place; checking at every stream also covers a server that reinstalls them.
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler) and not isinstance(handler, _EndStreamsThen):
            signal.signal(signum, _EndStreamsThen(handler))


def register(loop: asyncio.AbstractEventLoop, outbox: Outbox) -> None:
    _observe_shutdown_signals()
    _open_streams.setdefault(loop, set()).add(outbox)
    if _ending_everything or loop in _ending_loops:
        outbox.finish(SHUTDOWN)


def unregister(loop: asyncio.AbstractEventLoop, outbox: Outbox) -> None:
    streams = _open_streams.get(loop)
    if streams is not None:
        streams.discard(outbox)
        if not streams:
            del _open_streams[loop]
