"""One rate-limited loop that applies a node's full desired state.

Watch handlers never touch the datapath: they call `mark_dirty()`. The loop
then asks `desired()` for the whole state (the agent compiles it from its
caches, incrementally: a `CompiledState` names the keys that changed) and
hands it to `P4RuntimeDatapath.replace_state`, which writes one diffed batch. A periodic resync repairs drift and reconnects after a target
restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import grpc

from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.p4rt import ArbitrationError, NotPrimaryError, WriteError
from datapath.entries import Entry
from datapath.state import CompiledState

log = logging.getLogger(__name__)
# What a failed round may raise; the next round retries (temporary by nature).
# grpc.FutureTimeoutError (the channel not ready in time: the target is down
# or restarting) is no RpcError; missing here it ended the loop's thread.
RETRYABLE = (grpc.RpcError, grpc.FutureTimeoutError, WriteError, NotPrimaryError, ArbitrationError, TimeoutError,
             ConnectionError)


class SyncLoop:
    def __init__(self, datapath: P4RuntimeDatapath, desired: Callable[[], Iterable[Entry] | CompiledState],
                 min_interval: float = 0.2, resync_interval: float = 60.0) -> None:
        self.datapath = datapath
        self.desired = desired
        self.min_interval = min_interval  # rate limit: at most one batch per interval
        self.resync_interval = resync_interval
        self.rounds = 0
        self.last_error: BaseException | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datapath-sync", daemon=True)

    def start(self) -> None:
        self._dirty.set()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._thread.join(timeout=10)

    def mark_dirty(self) -> None:
        self._dirty.set()

    def _run(self) -> None:
        last_resync = time.monotonic()
        while not self._stop.is_set():
            self._dirty.wait(timeout=self.resync_interval)
            if self._stop.is_set():
                return
            self._dirty.clear()
            resync = time.monotonic() - last_resync >= self.resync_interval
            try:
                if resync:
                    self.datapath.resync()
                    last_resync = time.monotonic()
                written = self.datapath.replace_state(self.desired())
                self.last_error = None
                if written:
                    log.info("datapath: %d updates written", written)
            except RETRYABLE as err:
                self.last_error = err
                log.warning("datapath sync failed, retrying: %s", err)
                self._dirty.set()
            self.rounds += 1
            time.sleep(self.min_interval)
