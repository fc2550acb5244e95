"""A kubeconfig loaded without leaving its credentials on disk.

The kubernetes client writes a kubeconfig's inline CA, client certificate
and private key (the `*-data` fields) to temporary files and removes them
only at interpreter exit, so a process killed by a signal leaves its private
key behind. Here the client stages them in a private directory, and each is
moved at once into an anonymous memory file (memfd) that TLS reads through
/proc/self/fd and that goes with the process however it ends.

A token kubeconfig also gets a refresh hook from the client, run before every
request, that copies the loader's own paths (the staged ones) back into the
configuration, and an exec plugin's refresh stages new files: the hook is
wrapped so that what it sets is moved into memory the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

# The client configuration's fields that name a certificate or key file.
FILE_FIELDS = ("ssl_ca_cert", "cert_file", "key_file")

_lock = threading.Lock()
# One memory file per distinct content, kept open for the process's life
# (every connection the pool opens reads them again): a process that loads
# the same kubeconfig many times holds one set.
_memfds: dict[bytes, str] = {}
# Each staged path already moved, and each memory file, to the memory file.
_moved: dict[str, str] = {}


def load_kubeconfig(path: str | None, cfg: client.Configuration) -> None:
    """`config.load_kube_config` into `cfg`, its staged files moved into memory."""
    staging = Path(tempfile.mkdtemp(prefix="multinet-kubeconfig-"))
    try:
        config.load_kube_config(  # type: ignore[call-arg]  # temp_file_path: a real keyword the stubs lack
            config_file=path, client_configuration=cfg, temp_file_path=str(staging))
        _into_memory(cfg, staging)
    finally:
        # Empty after a load; the client makes it again if a refresh stages new files.
        shutil.rmtree(staging, ignore_errors=True)
    hook = getattr(cfg, "refresh_api_key_hook", None)
    if hook is not None:
        cfg.refresh_api_key_hook = _refreshing(hook, staging)  # type: ignore[attr-defined]  # missing from the stubs


def _refreshing(hook: Callable[[Any], None], staging: Path) -> Callable[[Any], None]:
    def refresh(cfg: Any) -> None:
        hook(cfg)
        cfg.refresh_api_key_hook = refresh  # the client's hook sets itself again each time
        if _into_memory(cfg, staging):
            shutil.rmtree(staging, ignore_errors=True)
    return refresh


def _into_memory(cfg: Any, staging: Path) -> bool:
    """Point each file field of `cfg` that names a staged file at its memory copy
    (the staged file then goes); True when one was new. Run before every request,
    so lock-free when nothing is new."""
    moved_now = False
    for field in FILE_FIELDS:
        staged = getattr(cfg, field, None)
        if staged and staged not in _moved and Path(staged).parent == staging:
            with _lock:
                if staged not in _moved:
                    memfd = _in_memory(Path(staged).read_bytes(), field)
                    _moved[staged] = _moved[memfd] = memfd  # a field already moved is looked up too
                    os.unlink(staged)
                    moved_now = True
        if staged in _moved:
            setattr(cfg, field, _moved[staged])
    return moved_now


def _in_memory(content: bytes, label: str) -> str:
    if content not in _memfds:
        fd = os.memfd_create(f"kubeconfig-{label}")  # close-on-exec: no child inherits it
        with os.fdopen(os.dup(fd), "wb") as out:
            out.write(content)
        _memfds[content] = f"/proc/self/fd/{fd}"
    return _memfds[content]
