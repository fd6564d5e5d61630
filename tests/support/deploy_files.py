"""The shipped deployment files (deploy/), read as the tests run them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

__all__ = ["NGINX_CONFIG", "SHIPPED_COMMAND", "UNIT", "exec_start", "node_arguments"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "ssehub@.service"
NGINX_CONFIG = DEPLOY / "nginx.conf"
SHIPPED_COMMAND = "/opt/ssehub/bin/ssehub"


def exec_start() -> list[str]:
    """The unit's ExecStart, continuation lines joined, as words."""
    text = UNIT.read_text().replace("\\\n", " ")
    match = re.search(r"^ExecStart=(.+)$", text, re.MULTILINE)
    assert match, "the unit has no ExecStart"
    return shlex.split(match.group(1))


def node_arguments() -> list[str]:
    """The unit's `ssehub serve` options without `--port %i`, for a hub on a test port."""
    words = exec_start()
    assert words[:2] == [SHIPPED_COMMAND, "serve"]
    arguments = words[2:]
    port = arguments.index("--port")
    assert arguments[port + 1] == "%i", "the instance name is the port"
    del arguments[port : port + 2]
    return arguments
