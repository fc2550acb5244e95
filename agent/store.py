"""Where the attachment records live: one JSON file per record on the node.

Keyed by (network name, container id, interface), the spec's key for plugin
state; written atomically (temp file, rename), so DEL, CHECK and GC work
after an agent restart (see agent.record for what a record holds).

No fsync: a record guards kernel state (links, addresses, routes in network
namespaces), which lives exactly as long as the kernel. A killed agent
finds every rename it made, since the page cache outlives the process; a
machine that loses its page cache lost the namespaces with it, and a record
cut short by that is a torn file that all() skips. The two fsyncs per write
(file and directory) were most of a write's cost and the longest tail of ADD.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from agent.record import AttachmentRecord


class StateStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, network: str, container_id: str, ifname: str) -> Path:
        key = json.dumps([network, container_id, ifname]).encode()
        return self.root / (hashlib.sha256(key).hexdigest()[:32] + ".json")

    def read(self, network: str, container_id: str, ifname: str) -> AttachmentRecord | None:
        try:
            text = self._path(network, container_id, ifname).read_text()
        except FileNotFoundError:
            return None
        return AttachmentRecord.from_json(json.loads(text))

    def write(self, record: AttachmentRecord) -> None:
        path = self._path(*record.key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record.to_json(), f, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        self._path(network, container_id, ifname).unlink(missing_ok=True)

    def all(self) -> list[AttachmentRecord]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            try:
                out.append(AttachmentRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a foreign or torn file: never ours (we rename whole files)
        return out

    def sweep_temp(self) -> None:
        """At start only: temp files of writes cut short carry nothing committed."""
        for tmp in self.root.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
