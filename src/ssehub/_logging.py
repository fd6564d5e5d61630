"""How `ssehub serve` logs: standard `logging`, as text or one JSON object per line.

The hub logs under `ssehub` (`ssehub.server`, ...); the access log is a logger of its own,
`ssehub.access`, so that it can be routed apart (`logging.getLogger("ssehub.access")`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["ACCESS", "JsonFormatter", "configure_logging", "log_access"]

ACCESS = logging.getLogger("ssehub.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has; anything else on a record came as `extra=` and is a field of its own.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message,
    the record's `extra=` fields, and the traceback as one string if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", form: str = "text") -> None:
    """Write the hub's records at `level` and above to stderr, as text or JSON.

    A process whose root logger already has a handler (an application that set up logging)
    keeps it: only the `ssehub` loggers' level is set.
    """
    logging.getLogger("ssehub").setLevel(level.upper())
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())


def log_access(
    client: str, method: str, path: str, status: int, sent: int, duration: float
) -> None:
    """One access-log line: the query string is left out, as it may carry a token."""
    ACCESS.info(
        '%s "%s %s" %d %d %.6f',
        client or "-",
        method,
        path,
        status,
        sent,
        duration,
        extra={
            "client": client or None,
            "method": method,
            "path": path,
            "status": status,
            "bytes": sent,
            "duration": round(duration, 6),
        },
    )
