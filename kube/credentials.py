"""A kubeconfig loaded without leaving its credentials on disk.

The kubernetes client writes a kubeconfig's inline CA, client certificate
and private key (the `*-data` fields) to temporary files and removes them
only at interpreter exit, so a process killed by a signal leaves its private
key behind. Here the client stages them in a private directory, and each is
moved at once into an anonymous memory file (memfd) that TLS reads through
/proc/self/fd and that goes with the process however it ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from kubernetes import client, config

# The client configuration's fields that name a certificate or key file.
FILE_FIELDS = ("ssl_ca_cert", "cert_file", "key_file")

_lock = threading.Lock()
# One memory file per distinct content, kept open for the process's life
# (every connection the pool opens reads them again): a process that loads
# the same kubeconfig many times holds one set.
_memfds: dict[bytes, str] = {}


def load_kubeconfig(path: str | None, cfg: client.Configuration) -> None:
    """`config.load_kube_config` into `cfg`, its staged files moved into memory."""
    staging = Path(tempfile.mkdtemp(prefix="multinet-kubeconfig-"))
    try:
        config.load_kube_config(  # type: ignore[call-arg]  # temp_file_path: a real keyword the stubs lack
            config_file=path, client_configuration=cfg, temp_file_path=str(staging))
        for field in FILE_FIELDS:
            staged = getattr(cfg, field, None)
            if staged and Path(staged).parent == staging:
                setattr(cfg, field, _in_memory(Path(staged).read_bytes(), field))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _in_memory(content: bytes, label: str) -> str:
    with _lock:
        if content not in _memfds:
            fd = os.memfd_create(f"kubeconfig-{label}")  # close-on-exec: no child inherits it
            with os.fdopen(os.dup(fd), "wb") as out:
                out.write(content)
            _memfds[content] = f"/proc/self/fd/{fd}"
        return _memfds[content]
