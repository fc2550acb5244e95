"""The machine-wide sysctls kubelet sets, recorded before the first kubelet of
a cluster starts and restored when the cluster goes down.

kubelet's container manager writes these at start (vm.overcommit_memory=1,
kernel.panic=10, kernel.panic_on_oops=1: "protectKernelDefaults: false").
They are not per network namespace, so they change the whole machine.
"""

from __future__ import annotations

import json
from pathlib import Path

KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
PROC_SYS = Path("/proc/sys")


def read(names: tuple[str, ...] = KUBELET_SYSCTLS) -> dict[str, str]:
    return {name: (PROC_SYS / name).read_text().strip() for name in names}


def record(path: Path) -> dict[str, str]:
    """Save the current values unless a record exists (a second `up` keeps the first)."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = read()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values))
    tmp.replace(path)
    return values


def restore(path: Path) -> dict[str, tuple[str, str]]:
    """Write back the recorded values; returns {name: (was, restored)} for those that differed."""
    try:
        values: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    changed = {}
    for name, value in values.items():
        current = (PROC_SYS / name).read_text().strip()
        if current != value:
            (PROC_SYS / name).write_text(value)
            changed[name] = (current, value)
    path.unlink()
    return changed
