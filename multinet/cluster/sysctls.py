"""The machine-wide sysctls kubelet sets, recorded before the first kubelet
starts and restored when the last cluster with kubelets goes down.

kubelet's container manager writes these at start (vm.overcommit_memory=1,
kernel.panic=10, kernel.panic_on_oops=1: "protectKernelDefaults: false").
They are not per network namespace, and several local clusters may run
kubelets at once, so there is one record for the machine: the values from
before any of them, and the clusters (by a file each keeps while its nodes
exist) that may have changed them. The first cluster records, the last
restores; a cluster gone without `down` (its file gone) no longer counts.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
PROC_SYS = Path("/proc/sys")
RECORD = Path("/run/multinet-local/kubelet-sysctls.json")  # the local clusters' own dir


def read(names: tuple[str, ...] = KUBELET_SYSCTLS) -> dict[str, str]:
    return {name: (PROC_SYS / name).read_text().strip() for name in names}


@contextmanager
def _locked(record: Path) -> Iterator[None]:
    """Hold the record's directory locked (flock), so clusters take turns."""
    for _ in range(5):
        record.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(record.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if record.parent.exists():  # not removed by the last release meanwhile
                yield
                return
        finally:
            os.close(fd)
    raise OSError(f"{record.parent}: removed under us five times")


def _load(record: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(record.read_text()))
    except (OSError, ValueError):
        return None


def _save(record: Path, doc: dict[str, Any]) -> None:
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(record)


def _others(doc: dict[str, Any], owner: Path) -> list[str]:
    return [o for o in doc.get("owners", []) if o != str(owner) and Path(o).exists()]


def acquire(owner: Path, record: Path = RECORD) -> dict[str, str]:
    """Register `owner` (a file that exists while its cluster has nodes), recording
    the values first if no cluster has; returns the values from before any."""
    with _locked(record):
        doc = _load(record) or {"values": read()}
        doc["owners"] = [*_others(doc, owner), str(owner)]
        _save(record, doc)
        return dict(doc["values"])


def release(owner: Path, record: Path = RECORD) -> dict[str, tuple[str, str]]:
    """Unregister `owner`; if no other cluster remains, write the recorded values
    back. Returns {name: (was, restored)} for those that differed."""
    with _locked(record):
        doc = _load(record)
        if doc is None:
            return {}
        others = _others(doc, owner)
        if others:
            _save(record, {**doc, "owners": others})
            return {}
        changed = {}
        for name, value in doc["values"].items():
            current = (PROC_SYS / name).read_text().strip()
            if current != value:
                (PROC_SYS / name).write_text(value)
                changed[name] = (current, value)
        record.unlink()
    try:
        record.parent.rmdir()  # ours; empty once the record is gone
    except OSError:
        pass
    return changed
