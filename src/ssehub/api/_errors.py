"""Unexpected errors, logged once per kind with a count, never a traceback per request.

A client that can trigger an internal error could otherwise fill the disk with tracebacks (one
per request, at any rate the client likes). The first error of a kind is logged with its
traceback; later ones are counted, and the count is logged when it reaches 10, 100, 1000...
"""

from __future__ import annotations

import logging

__all__ = ["ErrorLog"]


class ErrorLog:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._counts: dict[tuple[str, str], int] = {}

    def report(self, what: str, error: BaseException) -> None:
        """Log `error` (raised while doing `what`), or count it if its kind was logged."""
        kind = (what, type(error).__name__)
        count = self._counts.get(kind, 0) + 1
        if len(self._counts) < 1000 or kind in self._counts:  # the kinds are bounded too
            self._counts[kind] = count
        if count == 1:
            self._logger.error("%s: %r", what, error, exc_info=error)
        elif count in (10, 100, 1000) or count % 10_000 == 0:
            self._logger.error("%s: %s has happened %d times", what, kind[1], count)
