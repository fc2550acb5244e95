"""Running code inside a named network namespace.

setns(2) changes only the calling thread, so each call runs in a short-lived
thread that enters the namespace; sockets and netlink handles created there
stay bound to it and may be used from any thread afterwards. Child processes
started from that thread (nft, iperf3) inherit the namespace.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)  # os.setns arrives only in Python 3.12


def enter(name: str) -> None:
    """Move the calling thread into network namespace `name`."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread inside network namespace `name`; return its result."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            enter(name)
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def run_in(name: str, argv: Sequence[str], stdin: str | None = None,
           check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command inside the namespace and wait for it."""
    return call_in(name, lambda: subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=check, timeout=timeout))


def popen_in(name: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a long-running process inside the namespace (caller stops it by pid)."""
    return call_in(name, lambda: subprocess.Popen(list(argv), **kwargs))  # type: ignore[call-overload, no-any-return]


def write_sysctl(name: str, path: str, value: str) -> None:
    """Write /proc/sys/<path> of the namespace (per-netns knobs resolve by the writer's netns)."""
    def write() -> None:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    call_in(name, write)


def exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")
