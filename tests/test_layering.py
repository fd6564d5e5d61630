"""The layering of docs/CONTRACTS.md, enforced: imports point down, the public surface is pinned.

Each import check runs in a fresh interpreter and reads `sys.modules`, so it sees everything an
import really loads, however indirectly.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ssehub

SRC = Path(ssehub.__file__).parent


def loaded_by(module: str) -> set[str]:
    """Every module that `import <module>` loads in a fresh interpreter."""
    code = (
        "import json, sys; before = set(sys.modules); "
        f"import {module}; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def roots(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("ssehub.asgi", {"httptools", "uvloop", "ssehub.server", "ssehub.wsgi"}),
        ("ssehub.wsgi", {"starlette", "ssehub.asgi", "ssehub.server", "httptools", "uvloop"}),
        ("ssehub.hub", {"ssehub.api", "ssehub.asgi", "ssehub.wsgi", "ssehub.server", "httpx"}),
        ("ssehub.api", {"ssehub.asgi", "ssehub.wsgi", "ssehub.server", "starlette", "httptools"}),
        ("ssehub.model", {"ssehub.hub", "ssehub.backends", "ssehub.api", "httpx"}),
        ("ssehub.client", {"ssehub.hub", "ssehub.server", "ssehub.asgi", "ssehub.api"}),
        ("ssehub.mercure", {"ssehub.asgi", "ssehub.wsgi", "ssehub.server", "starlette"}),
    ],
)
def test_imports_point_down(module: str, must_not_load: set[str]) -> None:
    loaded = loaded_by(module)
    wrong = {name for name in loaded if name in must_not_load or roots({name}) & must_not_load}
    assert not wrong, f"import {module} loads {sorted(wrong)}"


@pytest.mark.parametrize("module", ["ssehub.wire", "ssehub.testing"])
def test_the_codec_and_the_test_helpers_need_only_the_standard_library(module: str) -> None:
    loaded = loaded_by(module)
    assert {name for name in roots(loaded) if name not in sys.stdlib_module_names} == {"ssehub"}
    assert {name for name in loaded if roots({name}) == {"ssehub"}} <= {
        "ssehub",
        "ssehub.wire",
        "ssehub._wire_c",
        module,
    }


# Which package each layer's modules may import at module level (docs/CONTRACTS.md). A lazy
# import inside a function (the hub's `asgi_app()` facade) is not a dependency of the layer.
ALLOWED = {
    "wire": set(),
    "model": {"wire"},
    "_fanout": {"model"},
    "backends": {"model", "backends", "wire"},
    "hub": {"model", "backends", "_fanout", "wire"},
    "auth": set(),
    "api": {"api", "auth", "hub", "model", "backends", "wire"},
    "_logging": set(),
    "mercure": {"mercure", "api", "auth", "hub", "model", "backends", "wire"},
    "server": {
        "server",
        "_logging",
        "api",
        "auth",
        "hub",
        "model",
        "backends",
        "_fanout",
        "mercure",
        "wire",
    },
    "asgi": {"asgi", "api", "auth", "hub", "model", "_items", "mercure", "wire"},
    "wsgi": {"api", "hub", "model", "_items", "client", "wire"},
    "_items": {"wire"},
    "client": {"wire"},
    "testing": {"wire"},
}


def top_level_ssehub_imports(path: Path) -> set[str]:
    """The ssehub packages/modules a file imports at module level, outside TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Try):  # optional accelerators: `try: from ssehub import _x`
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ssehub" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    package = SRC / layer
    files = sorted(package.rglob("*.py")) if package.is_dir() else [SRC / f"{layer}.py"]
    assert files
    for path in files:
        wrong = top_level_ssehub_imports(path) - ALLOWED[layer] - {layer}
        assert not wrong, f"{path.relative_to(SRC)} imports ssehub.{sorted(wrong)}"


def test_the_public_surface_is_pinned() -> None:
    assert ssehub.__all__ == [
        "AsyncEventSource",
        "Decoder",
        "Event",
        "EventSource",
        "Hub",
        "InvalidPublication",
        "Publication",
        "SSEError",
        "SlowSubscriberError",
        "comment",
        "encode",
    ]
    for name in ssehub.__all__:
        assert getattr(ssehub, name).__name__ == name
    with pytest.raises(AttributeError):
        ssehub.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "ssehub.asgi",
            [
                "EventSourceResponse",
                "HubApp",
                "HubStreamResponse",
                "end_streams",
                "hub_app",
                "hub_stream",
                "last_event_id",
            ],
        ),
        (
            "ssehub.wsgi",
            [
                "HEADERS",
                "EventStream",
                "HubThread",
                "SyncSubscription",
                "event_stream",
                "publish_sync",
                "subscribe_sync",
            ],
        ),
        ("ssehub.server", ["ServerConfig", "run", "serve"]),
        ("ssehub.mercure", ["HUB_PATH", "Mercure", "discovery_link", "mount"]),
        (
            "ssehub.testing",
            [
                "EventStream",
                "RequestOptions",
                "assert_events",
                "decode",
                "read_events",
                "read_events_sync",
                "stream",
            ],
        ),
    ],
)
def test_each_shells_public_names_are_pinned(module: str, names: list[str]) -> None:
    imported = __import__(module, fromlist=["__all__"])
    assert sorted(imported.__all__) == sorted(names)
