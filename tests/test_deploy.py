"""The shipped systemd unit (deploy/ssehub@.service): systemd accepts it, and its command runs.

`systemd-analyze verify` checks the unit as systemd would load it, including that ExecStart
names an executable: the unit is rendered with this checkout's `.venv` for that, and nothing
else is changed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.deploy_files import SHIPPED_COMMAND, UNIT, exec_start, node_arguments
from support.hub_process import start_hub_process

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    installed = Path(sys.executable).with_name("ssehub")
    assert installed.exists(), "pip install -e . puts the ssehub command next to python"
    text = UNIT.read_text()
    assert SHIPPED_COMMAND in text
    # An instance of the template, as `systemctl start ssehub@8001` loads it.
    rendered = tmp_path / "ssehub@8001.service"
    rendered.write_text(text.replace(SHIPPED_COMMAND, str(installed)))
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(rendered)], capture_output=True, text=True
    )
    # verify exits 0 on unknown keys and bad values too, only warning: any word is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_open_file_limit_covers_the_connections() -> None:
    match = re.search(r"^LimitNOFILE=(\d+)$", UNIT.read_text(), re.MULTILINE)
    assert match, "the unit sets no LimitNOFILE"
    limit = int(match.group(1))
    words = exec_start()
    connections = int(words[words.index("--max-connections") + 1])
    # Each connection a descriptor, 16 kept for /healthz and /metrics, and some to spare
    # for the listening socket, Redis, SQLite and the log.
    assert limit >= connections + 16 + 64


def test_the_units_command_line_starts_a_hub() -> None:
    hub = start_hub_process(*node_arguments())
    try:
        # The public name, and loopback names for checks on the machine itself.
        for host in ("sse.example.com", "127.0.0.1", "localhost"):
            health = httpx.get(f"{hub.url}/healthz", headers={"Host": host})
            assert health.json() == {"status": "ok"}, host
        # Any other name: a page of another site reaching the hub through DNS rebinding.
        stranger = httpx.get(f"{hub.url}/healthz", headers={"Host": "evil.example"})
        assert stranger.status_code == 403
    finally:
        assert hub.terminate() == 0
