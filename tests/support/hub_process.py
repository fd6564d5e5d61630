"""A real `ssehub serve` (or a script that serves) in its own process, on a loopback port."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO

_READY = re.compile(r"serving on (http://[\d.]+:\d+)/")


@dataclass
class HubProcess:
    """A hub running in its own process; `url` is its base URL, without a trailing slash.
    `log` receives each line it writes to stderr from its start-up line on, then None at exit."""

    process: subprocess.Popen[str]
    url: str
    log: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_hub_process(*args: str, command: str = "serve", script: str = "") -> HubProcess:
    """`ssehub <command> --port 0 <args>` (or a `script` that serves), once it listens."""
    if script:
        argv = [sys.executable, script, *args]
    else:
        argv = [sys.executable, "-m", "ssehub", command, "--port", "0", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        match = _READY.search(line)
        if match:
            hub = HubProcess(process, match.group(1))
            hub.log.put(line)
            # Keep draining stderr so a chatty hub can never block on a full pipe.
            threading.Thread(target=_follow, args=(process.stderr, hub.log), daemon=True).start()
            return hub
    process.wait(timeout=10)
    raise RuntimeError(f"ssehub serve exited with {process.returncode} before listening")


def _follow(stderr: IO[str], log: queue.Queue[str | None]) -> None:
    for line in stderr:
        log.put(line)
    log.put(None)
