"""Running code inside a network namespace: the project's one setns(2).

A namespace is given by name (`ip netns`, under /run/netns) or by path
(/proc/PID/ns/net, a runtime's CNI_NETNS). setns(2) changes only the calling
thread, so each call runs in a short-lived thread that enters the namespace;
sockets and netlink handles created there stay bound to it and may be used
from any thread afterwards. Child processes started from that thread (nft,
iperf3) inherit the namespace.
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


NETNS_RUN_DIR = "/run/netns"


class NetnsGone(Exception):
    """The network namespace does not exist (any more)."""


def netns_path(netns: str) -> str:
    """A namespace given by name (ip netns) or by path (/proc/PID/ns/net)."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def open_netns(netns: str) -> int:
    """An fd of the namespace (the caller closes it); NetnsGone when it does not exist."""
    try:
        return os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsGone(f"network namespace {netns} does not exist") from None


def enter(name: str) -> None:
    """Move the calling thread into network namespace `name` (a name or a path)."""
    fd = open_netns(name)
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
    return os.path.exists(netns_path(name))
