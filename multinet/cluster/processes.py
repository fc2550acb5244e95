"""Start, identify and stop the local cluster's processes.

Each process is recorded in a pid file together with its start time from
/proc, so a later `down` signals exactly the process it started, never a
recycled pid and never something found by a name match.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


class ComponentError(RuntimeError):
    """A component failed to start or stay up; the message is one line plus log tail."""


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat, in clock ticks since boot
    argv: tuple[str, ...]
    log: str
    started: float = 0.0  # wall clock at spawn: orders processes started within one clock tick


    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)  # atomic: a crash never leaves half a record

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(data["name"], data["pid"], data["start_time"], tuple(data["argv"]), data["log"],
                       float(data.get("started", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def process_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19])


def is_running(record: ProcessRecord) -> bool:
    return process_start_time(record.pid) == record.start_time


def spawn(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    """Start `argv` detached from this process (its own session), logging to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI; signals go only to it
            env=env,
        )
    start = process_start_time(proc.pid)
    if start is None:
        raise ComponentError(f"{name}: exited at once\n{log_tail(log)}")
    return ProcessRecord(name, proc.pid, start, tuple(argv), str(log), time.time())


def stop(record: ProcessRecord, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`. Returns False if it was not running."""
    if not is_running(record):
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(record):
            _reap(record.pid)
            return True
        time.sleep(0.1)
    os.kill(record.pid, signal.SIGKILL)
    while is_running(record):
        time.sleep(0.05)
    _reap(record.pid)
    return True


def _reap(pid: int) -> None:
    # Only a child of ours can be reaped; anything else is reaped by init.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def log_tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"  (no log at {log})"
    return "\n".join("  | " + line for line in text[-lines:])
