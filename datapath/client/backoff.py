"""A capped exponential delay between retries of one failing thing."""

from __future__ import annotations


class Backoff:
    """`first`, doubling with each failure in a row, never above `cap`; `reset()` after a success."""

    def __init__(self, first: float, cap: float) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff: need 0 < first ({first}) <= cap ({cap})")
        self.first, self.cap = first, cap
        self.failures = 0  # in a row

    def next(self) -> float:
        """The delay before the next try, counting one more failure."""
        delay = min(self.cap, self.first * float(1 << min(self.failures, 32)))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
