"""Pausing Python's cyclic garbage collector over one large batch.

A Write of 100,000 routes allocates several objects per entry, none of them
in a reference cycle: reference counting frees them all. The collector still
runs a pass every 700 allocations, and its full passes walk every object the
process holds, the target's store included, so they grew with the table and
took about a third of a large Write. Paused, the batch's garbage is freed as
before and any cycle is found by the first pass after it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No collector passes inside the block; untouched if already disabled
    (by the caller, or another thread's pause still running)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
