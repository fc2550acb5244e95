"""One rate-limited loop that applies a node's full desired state.

Watch handlers never touch the datapath: they call `mark_dirty()`. The loop
then asks `desired()` for the whole state (the agent compiles it from its
caches, incrementally: a `CompiledState` names the keys that changed) and
hands it to `P4RuntimeDatapath.replace_state`, which writes one diffed
batch. Failures are handled as a P4Runtime controller handles them:

- the StreamChannel breaks (the target restarted, or only the connection):
  the client's stream thread wakes the loop at once, and the round
  reconnects, arbitrates, pushes the pipeline when the target runs none,
  reads what the target holds and writes the difference: everything after
  a restart, nothing after a transient break. A round that fails to reach
  the target is retried after 0.1 s doubling to 1 s (`retry`).
- the target refuses updates (a table full, P4Runtime 12.2): the rest of the
  batch is applied; a full table is reported once per set of full tables
  (`on_full`), and the same state is tried again after 1 s doubling to 30 s
  (`refused_retry`), at once when the desired state changes or the stream
  breaks (a retry of the same state would only be refused again).
- a periodic resync reads the target and repairs drift.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import grpc

from datapath.client.backoff import Backoff
from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.full import TableFull
from datapath.client.p4rt import ArbitrationError, NotPrimaryError, WriteError
from datapath.entries import Entry
from datapath.state import CompiledState, chain

log = logging.getLogger(__name__)
State = list[Entry] | CompiledState
# What a failed round may raise; the next round retries (temporary by nature).
# grpc.FutureTimeoutError (the channel not ready in time: the target is down
# or restarting) is no RpcError; missing here it ended the loop's thread.
RETRYABLE = (grpc.RpcError, grpc.FutureTimeoutError, NotPrimaryError, ArbitrationError, TimeoutError,
             ConnectionError)


class SyncLoop:
    def __init__(self, datapath: P4RuntimeDatapath, desired: Callable[[], Iterable[Entry] | CompiledState],
                 min_interval: float = 0.2, resync_interval: float = 60.0,
                 on_full: Callable[[TableFull], None] | None = None,
                 retry: Backoff | None = None, refused_retry: Backoff | None = None) -> None:
        self.datapath = datapath
        self.desired = desired
        self.min_interval = min_interval  # rate limit: at most one batch per interval
        self.resync_interval = resync_interval
        self.on_full = on_full
        self.retry = retry or Backoff(0.1, 1.0)
        self.refused_retry = refused_retry or Backoff(1.0, 30.0)
        self.rounds = 0
        self.held = 0  # wakes that did not retry a refused state (unchanged, its delay not over)
        self.last_error: BaseException | None = None
        self.full: TableFull | None = None  # reported, while those tables stay full
        self._refused: State | None = None  # the desired state of the last refused write
        self._held: CompiledState | None = None  # a state taken but not handed over (its round was held)
        self._retry_at: float | None = None
        self._resync_at = self._last_round = 0.0
        self._dirty = threading.Event()
        self._lost = threading.Event()  # the stream broke since the last round began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datapath-sync", daemon=True)
        datapath.client.stream_listeners.append(self._stream_lost)

    def start(self) -> None:
        self._resync_at = time.monotonic() + self.resync_interval
        self._dirty.set()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._thread.join(timeout=10)

    def mark_dirty(self) -> None:
        self._dirty.set()

    def _stream_lost(self) -> None:
        self._lost.set()
        self._dirty.set()

    def _run(self) -> None:
        while (entries := self._next_round()) is not None:
            self._round(entries)
            self.rounds += 1

    def _next_round(self) -> State | None:
        """Wait until a round is due and return the desired state for it; None once stopped."""
        while not self._stop.is_set():
            now = time.monotonic()
            due = self._retry_at if self._retry_at is not None else self._resync_at
            if now >= due:
                self._dirty.clear()
                return self._take()
            if not self._dirty.is_set():
                self._dirty.wait(due - now)
            elif now < self._last_round + self.min_interval:
                self._stop.wait(self._last_round + self.min_interval - now)
            else:
                self._dirty.clear()
                entries = self._take()
                if self._retry_at is None or self._jumps_the_delay(entries):
                    return entries
                self.held += 1
                self._held = entries if isinstance(entries, CompiledState) else None
        return None

    def _take(self) -> State:
        """The desired state; a compiled one carries the changes of a held one before it."""
        got = self.desired()
        if not isinstance(got, CompiledState):
            return list(got)
        held, self._held = self._held, None
        return got if held is None else chain(held, got)

    def _jumps_the_delay(self, entries: State) -> bool:
        """Whether a wake during a retry delay runs a round now: only when a
        write was refused and the state or the session changed since."""
        return self._refused is not None and (self._lost.is_set() or _differs(entries, self._refused))

    def _round(self, entries: State) -> None:
        self._last_round = now = time.monotonic()
        self._lost.clear()
        try:
            if now >= self._resync_at:
                self.datapath.resync()
                self._resync_at = time.monotonic() + self.resync_interval
            written = self.datapath.replace_state(entries)
        except WriteError as err:
            self._refused_write(err, entries)
        except RETRYABLE as err:
            self._failed(err)
        else:
            self._succeeded(written)

    def _succeeded(self, written: int) -> None:
        if self.full is not None:
            log.info("datapath: tables %s take the whole state again", ", ".join(self.full.tables))
        self.last_error, self.full, self._refused, self._retry_at = None, None, None, None
        self.retry.reset()
        self.refused_retry.reset()
        if written:
            log.info("datapath: %d updates written", written)

    def _failed(self, err: BaseException) -> None:
        """The target was not reached (or not as primary): try again soon, with whatever is desired then."""
        self.last_error, self._refused = err, None
        delay = self.retry.next()
        self._retry_at = time.monotonic() + delay
        log.warning("datapath sync failed, retrying in %.1f s: %s: %s", delay, type(err).__name__, err)

    def _refused_write(self, err: WriteError, entries: State) -> None:
        """The target took part of the batch: report a full table once, hold the same state back a while."""
        self.last_error, self._refused = err, entries
        self.retry.reset()
        with self.datapath.lock:
            desired = list(self.datapath.desired().values())
        full = TableFull.of(err, desired)
        if full is not None and (self.full is None or full.tables != self.full.tables):
            self.refused_retry.reset()
            self.full = full
            if self.on_full is not None:
                self.on_full(full)
        delay = self.refused_retry.next()
        self._retry_at = time.monotonic() + delay
        log.warning("datapath sync: the target refused updates, retrying in %.1f s unless the state changes: %s",
                    delay, err)


def _differs(state: State, refused: State) -> bool:
    """Whether `state` may differ from `refused`; for compiled states, whether
    it names changes since (one undone again counts: a retry too many, not one missed)."""
    if isinstance(state, CompiledState) and isinstance(refused, CompiledState):
        return state.base != refused.version or bool(state.changed)
    return isinstance(state, CompiledState) or isinstance(refused, CompiledState) or state != refused
