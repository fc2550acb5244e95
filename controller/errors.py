"""Errors that say whether to retry; converted at the edges (kopf, admission, queue)."""

from __future__ import annotations


class TemporaryError(Exception):
    """Try again after `delay` seconds (a missing network, an exhausted pool, a conflict)."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """Retrying will not help until the object itself changes."""
