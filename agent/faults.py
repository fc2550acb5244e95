"""Fault injection for tests only: off unless a test turns it on.

`crash_at` makes the agent exit hard right after an ADD step ("eth0",
"links"), as a SIGKILL would, so tests can prove that the next start undoes
exactly what the interrupted ADD made. The hidden `--crash-at` flag of
`multinet agent` sets it; nothing in a real deployment does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
CRASH_EXIT = 137  # what a runtime sees of a SIGKILLed process


@dataclass(frozen=True)
class Faults:
    crash_at: str = ""

    def crash_point(self, step: str) -> None:
        if self.crash_at == step:
            log.error("crash hook: exiting after ADD step %s", step)
            os._exit(CRASH_EXIT)
