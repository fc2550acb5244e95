"""In-memory indexes fed by the watches: who references which network.

Pure bookkeeping (no I/O), guarded by one lock because the watch handlers and
the workers run on different threads.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnetwork.names import SCHEDULING_GATE
from podnetwork.networks import Network, NetworksError, pod_networks

PodKey = tuple[str, str]  # (namespace, name)
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    networks: tuple[Network, ...]
    gated: bool
    terminal: bool
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.name)


def pod_record(pod: Mapping[str, Any]) -> PodRecord:
    """What the indexes need of a pod. A pod whose annotation is invalid references nothing."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    try:
        # Absent annotation: the KEP auto-population (the pod is on `default`).
        networks = pod_networks(annotations, bool(spec.get("hostNetwork")))
    except NetworksError:
        networks = ()
    gates = spec.get("schedulingGates") or []
    return PodRecord(
        namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid", ""), networks=networks,
        gated=any(g.get("name") == SCHEDULING_GATE for g in gates),
        terminal=(pod.get("status") or {}).get("phase") in TERMINAL_PHASES,
        labels=tuple(sorted((meta.get("labels") or {}).items())),
    )


POD_META_KEPT = ("namespace", "name", "uid", "resourceVersion", "labels", "annotations", "deletionTimestamp")
POD_SPEC_KEPT = ("schedulingGates", "hostNetwork")


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pod `pod_record` reads, for the informer's cache (a cluster's pods are large)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return {"metadata": {k: meta[k] for k in POD_META_KEPT if k in meta},
            "spec": {k: spec[k] for k in POD_SPEC_KEPT if k in spec},
            "status": {"phase": (pod.get("status") or {}).get("phase")}}


class Index:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[PodKey, PodRecord] = {}
        self._attachments: dict[PodKey, str] = {}  # (ns, name) -> spec.podNetworkName
        self._network_pods: dict[str, set[PodKey]] = defaultdict(set)
        self._attachment_pods: dict[PodKey, set[PodKey]] = defaultdict(set)
        # Last seen PodNetwork, PodNetworkAttachment and NetworkParams objects, from the watches.
        self._objects: dict[str, dict[Any, dict[str, Any]]] = defaultdict(dict)
        # Pods admitted but not yet seen by the pod watch: (kind, key) -> {pod key: until}.
        # They keep what they reference in use, so a deletion right after the pod's
        # creation cannot slip through before the watch delivers the pod.
        self._admitted: dict[tuple[str, Any], dict[PodKey, float]] = defaultdict(dict)

    def put(self, kind: str, key: Any, obj: dict[str, Any] | None) -> None:
        with self._lock:
            if obj is None:
                self._objects[kind].pop(key, None)
            else:
                self._objects[kind][key] = obj

    def get(self, kind: str, key: Any) -> dict[str, Any] | None:
        with self._lock:
            return self._objects[kind].get(key)

    def keys(self, kind: str) -> list[Any]:
        with self._lock:
            return list(self._objects[kind])

    def admit(self, pod: PodKey, refs: list[tuple[str, Any]], until: float) -> None:
        """A pod referencing `refs` ("network", name) / ("attachment", (ns, name)) was just admitted."""
        with self._lock:
            for ref in refs:
                self._admitted[ref][pod] = until

    def _admitted_pods(self, ref: tuple[str, Any], now: float) -> list[PodKey]:
        pods = self._admitted.get(ref, {})
        for pod in [p for p, until in pods.items() if until <= now or p in self._pods]:
            del pods[pod]
        return sorted(pods)

    def set_pod(self, record: PodRecord) -> PodRecord | None:
        with self._lock:
            old = self._drop_pod(record.key)
            self._pods[record.key] = record
            for net in record.networks:
                if net.pod_network_name:
                    self._network_pods[net.pod_network_name].add(record.key)
                else:
                    self._attachment_pods[(record.namespace, net.pod_network_attachment_name)].add(record.key)
            return old

    def remove_pod(self, key: PodKey) -> PodRecord | None:
        with self._lock:
            return self._drop_pod(key)

    def _drop_pod(self, key: PodKey) -> PodRecord | None:
        old = self._pods.pop(key, None)
        for net in old.networks if old else ():
            if net.pod_network_name:
                self._network_pods[net.pod_network_name].discard(key)
            else:
                self._attachment_pods[(key[0], net.pod_network_attachment_name)].discard(key)
        return old

    def set_attachment(self, key: PodKey, network: str | None) -> None:
        with self._lock:
            if network is None:
                self._attachments.pop(key, None)
            else:
                self._attachments[key] = network

    def attachment_network(self, key: PodKey) -> str | None:
        with self._lock:
            return self._attachments.get(key)

    def attachments_of(self, network: str) -> list[PodKey]:
        with self._lock:
            return [k for k, n in self._attachments.items() if n == network]

    def pod(self, key: PodKey) -> PodRecord | None:
        with self._lock:
            return self._pods.get(key)

    def pods_of_network(self, network: str, include_attachments: bool = True) -> list[PodRecord]:
        """Pods referencing `network` directly (and, optionally, through an attachment)."""
        with self._lock:
            keys = set(self._network_pods.get(network, ()))
            if include_attachments:
                for att, net in self._attachments.items():
                    if net == network:
                        keys |= self._attachment_pods.get(att, set())
            return [self._pods[k] for k in keys if k in self._pods]

    def pods_of_attachment(self, key: PodKey) -> list[PodRecord]:
        with self._lock:
            return [self._pods[k] for k in self._attachment_pods.get(key, ()) if k in self._pods]

    def gated_pods(self) -> list[PodRecord]:
        with self._lock:
            return [p for p in self._pods.values() if p.gated]

    def network_in_use(self, network: str, now: float = 0.0) -> list[str]:
        """Who keeps `network` in use: active pods referencing it directly (or just
        admitted, as of `now`), and attachments."""
        users = [f"pod {p.namespace}/{p.name}" for p in self.pods_of_network(network, include_attachments=False)
                 if not p.terminal]
        users += [f"PodNetworkAttachment {ns}/{name}" for ns, name in self.attachments_of(network)]
        with self._lock:
            users += [f"pod {ns}/{name} (admitted)" for ns, name in self._admitted_pods(("network", network), now)]
        return sorted(users)

    def attachment_in_use(self, key: PodKey, now: float = 0.0) -> list[str]:
        users = [f"pod {p.namespace}/{p.name}" for p in self.pods_of_attachment(key) if not p.terminal]
        with self._lock:
            users += [f"pod {ns}/{name} (admitted)" for ns, name in self._admitted_pods(("attachment", key), now)]
        return sorted(users)
