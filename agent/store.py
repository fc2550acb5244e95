"""Where the attachment records live: one JSON file per record on the node.

Keyed by (network name, container id, interface), the spec's key for plugin
state; written atomically (temp file, rename), so DEL, CHECK and GC work
after an agent restart (see agent.record for what a record holds).

No fsync, and nothing a crash of the agent can lose: a write is complete
once write(2) and rename(2) have returned, because the data then sits in the
kernel's page cache, which outlives the process (SIGKILL included); a write
cut short before the rename leaves only a temp file, swept at start. What
fsync would add is surviving a crash of the kernel itself, and a record
guards kernel state only (links, addresses, routes in network namespaces),
which dies with the kernel: a record lost or torn that way guards nothing,
and read() and all() treat a torn one as absent. The two fsyncs per write
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
            return AttachmentRecord.from_json(json.loads(self._path(network, container_id, ifname).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # Torn: only a machine crash leaves one (no fsync, see above), and
            # it took the kernel state the record guarded with it. DEL then
            # still releases what a delegate may hold on disk (del_unknown).
            return None

    def write(self, record: AttachmentRecord) -> None:
        path = self._path(*record.key)
        # dumps, not dump: dump encodes piecewise in Python, dumps in C (an
        # ADD writes its record two or three times).
        text = json.dumps(record.to_json(), sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
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
