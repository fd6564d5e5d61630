"""A real `ssehub serve` (or a script that serves) in its own process, on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

_READY = re.compile(r"serving on (http://[\d.]+:\d+)/")


@dataclass
class HubProcess:
    """A hub running in its own process; `url` is its base URL, without a trailing slash."""

    process: subprocess.Popen[str]
    url: str

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
            # Keep draining stderr so a chatty hub can never block on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return HubProcess(process, match.group(1))
    process.wait(timeout=10)
    raise RuntimeError(f"ssehub serve exited with {process.returncode} before listening")
