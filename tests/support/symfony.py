"""Publishing through Debian's php-symfony-mercure (`tests/support/symfony_publish.php`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SYMFONY_MERCURE", "symfony_publish"]

SCRIPT = Path(__file__).with_name("symfony_publish.php")
SYMFONY_MERCURE = Path("/usr/share/php/Symfony/Component/Mercure/Hub.php")


def symfony_publish(hub_url: str, jwt: str, updates: list[dict[str, Any]]) -> list[str]:
    """Publish `updates` as a Symfony app does (its `Hub` with a static token); their ids.
    Skips the test, saying why, without php or symfony/mercure."""
    php = shutil.which("php")
    if php is None or not SYMFONY_MERCURE.exists():
        pytest.skip("php and php-symfony-mercure are not installed (`make system-deps`)")
    done = subprocess.run(
        [php, str(SCRIPT), f"{hub_url}/.well-known/mercure", jwt],
        input=json.dumps(updates),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert all("id" in answer for answer in answers), (answers, done.stderr)
    return [answer["id"] for answer in answers]
