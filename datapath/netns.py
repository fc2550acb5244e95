"""Network namespaces: the one place that enters them (setns(2)).

setns(2) changes only the calling thread, so each call runs in a thread that
enters the namespace; sockets and netlink handles created there stay bound to
it and may be used from any thread afterwards. Child processes started from
that thread (nft, iperf3) inherit the namespace. Entering in a thread of our
own avoids the fork per namespace that pyroute2's netns support costs.

A namespace is given by name (as `ip netns` makes them), by path
(`/proc/PID/ns/net`, a CNI_NETNS), or as an open file descriptor.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
NETNS_RUN_DIR = "/var/run/netns"  # where `ip netns add` puts its bind mounts (ip-netns(8))
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)  # os.setns arrives only in Python 3.12; drop this with 3.11

Netns = str | int  # a name, a path, or an open file descriptor


class NetnsGone(FileNotFoundError):
    """The network namespace does not exist (any more)."""


def netns_path(netns: str) -> str:
    """The path of a namespace given by name (ip netns) or by path (/proc/PID/ns/net)."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def exists(netns: str) -> bool:
    return os.path.exists(netns_path(netns))


def netns_mounted(netns: str) -> bool:
    """Whether the path still holds a namespace. A runtime unmounts a pod's
    namespace before it removes the file, and an unmounted one is a plain
    empty file: only an nsfs inode shares the device of our own namespace's."""
    try:
        return os.stat(netns_path(netns)).st_dev == os.stat("/proc/self/ns/net").st_dev
    except FileNotFoundError:
        return False


def open_netns(netns: str) -> int:
    """An O_CLOEXEC descriptor of the namespace; the caller closes it."""
    try:
        return os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsGone(f"network namespace {netns} does not exist") from None


def enter(netns: Netns) -> None:
    """Move the calling thread into the namespace."""
    fd = netns if isinstance(netns, int) else open_netns(netns)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    finally:
        if not isinstance(netns, int):  # a descriptor given to us stays the caller's
            os.close(fd)


def call_in(netns: Netns, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread inside the namespace; return its result or raise its error."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            enter(netns)
            result.append(fn())
        except BaseException as err:  # re-raised in the caller's thread
            error.append(err)

    thread = threading.Thread(target=run, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def executor(netns: str, name: str = "") -> ThreadPoolExecutor:
    """One worker thread living in the namespace, for a stream of calls that
    must all act there (netlink handles, child processes). The caller shuts it down."""
    return ThreadPoolExecutor(1, name or f"netns-{netns}", initializer=enter, initargs=(netns,))


def socket_in(netns: Netns, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket bound to the namespace (e.g. AF_NETLINK for an IPRoute(fileno=...))."""
    return call_in(netns, lambda: socket.socket(family, kind, proto))


def run_in(netns: Netns, argv: Sequence[str], stdin: str | None = None,
           check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command inside the namespace and wait for it."""
    return call_in(netns, lambda: subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=check, timeout=timeout))


def popen_in(netns: Netns, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a long-running process inside the namespace (the caller stops it by pid)."""
    return call_in(netns, lambda: subprocess.Popen(list(argv), **kwargs))


def write_sysctl(netns: Netns, path: str, value: str) -> None:
    """Write /proc/sys/<path> of the namespace (per-netns knobs resolve by the writer's netns)."""
    def write() -> None:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    call_in(netns, write)
