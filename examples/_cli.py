"""The command line the examples share: `--host` and `--port` (each has its own default port)."""

from __future__ import annotations

import argparse


def arguments(doc: str | None, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=port, help="port (0: any free one)")
    return parser
