"""`ssehub serve --workers N`: N hub processes on one port, sharing one backend.

Each worker is a whole hub server (its own event loop, connections and subscribers) listening
with SO_REUSEPORT, so the kernel spreads new connections across them; what one worker's
publishers publish reaches every worker's subscribers through the backend's broker (Redis).

The parent holds the port while the workers start (bound, never listening, so it takes no
connections), announces the hub once every worker listens, forwards SIGTERM/SIGINT to them and
waits, within the shutdown grace and a margin, before it kills any that linger. A worker that
dies on its own is started again, at most once a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

log = logging.getLogger("ssehub.server")

__all__ = ["serve_workers"]

_START_TIMEOUT = 30.0
_RESTART_INTERVAL = 1.0


def _reserve(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((host, port))
    return reserved


def _fork_worker(run_worker: Callable[[Callable[[str, int], None]], None], ready_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The worker: the parent's signal dispositions are not its own.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)

    def ready(host: str, port: int) -> None:
        os.write(ready_fd, b"r")

    code = 0
    try:
        run_worker(ready)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve_workers(
    host: str,
    port: int,
    workers: int,
    grace: float,
    run_worker: Callable[[int, Callable[[str, int], None]], None],
    announce: Callable[[str, int], None],
) -> int:
    """Run `workers` copies of `run_worker(port, ready)` on `port`; return the exit code.

    `run_worker` serves with SO_REUSEPORT on the given port and calls `ready(host, port)` once
    it listens; `announce(host, port)` says so once every worker listens.
    """
    try:
        reserved = _reserve(host, port)
    except OSError as error:
        print(
            f"ssehub serve: error: cannot listen on {host}:{port}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    port = reserved.getsockname()[1]
    read_fd, ready_fd = os.pipe()
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> int:
        return _fork_worker(lambda ready: run_worker(port, ready), ready_fd)

    children = {start() for _ in range(workers)}
    deadline = time.monotonic() + _START_TIMEOUT
    started = 0
    while started < workers:
        if stopping or time.monotonic() > deadline or _reap(children):
            _stop_all(children, grace)
            print("ssehub serve: error: a worker could not start", file=sys.stderr)
            return 1
        with contextlib.suppress(InterruptedError):
            if select.select([read_fd], [], [], 0.1)[0]:
                started += len(os.read(read_fd, workers))
    reserved.close()
    announce(host, port)
    last_restart = 0.0
    while not stopping:
        for pid in _reap(children):
            children.discard(pid)
            log.warning("worker %d exited; starting another", pid)
            time.sleep(max(0.0, last_restart + _RESTART_INTERVAL - time.monotonic()))
            last_restart = time.monotonic()
            children.add(start())
        time.sleep(0.1)
    _stop_all(children, grace)
    return 0


def _reap(children: set[int]) -> list[int]:
    """The workers that have exited (collected, so they leave no zombies)."""
    gone = []
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                gone.append(pid)
    return gone


def _stop_all(children: set[int], grace: float) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace + 2.0
    waiting = set(children)
    while waiting and time.monotonic() < deadline:
        waiting -= set(_reap(waiting))
        time.sleep(0.02)
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
