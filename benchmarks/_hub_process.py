"""`ssehub serve` for a benchmark: a free loopback port, and a start that waits until it answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SSEHUB = ROOT / ".venv" / "bin" / "ssehub"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_serve(port: int, options: list[str], *, pin: bool = False) -> subprocess.Popen[bytes]:
    """`ssehub serve --port PORT OPTIONS...`, once /healthz answers 200; `pin` puts it on core
    0 when there are two cores or more (the load generators get the others)."""
    taskset = pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    argv = [*(["taskset", "-c", "0"] if taskset else []), str(SSEHUB), "serve"]
    process = subprocess.Popen([*argv, "--port", str(port), *options], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("ssehub serve did not start")
