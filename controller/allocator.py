"""Cluster-wide IPAM against the apiserver.

Each allocated address is one cluster-scoped `IPAllocation` object named by
network and address, so two claims of one address can never both succeed: the
apiserver refuses the second create. An in-memory view of the claims (loaded
at start, kept by this process, the only active controller) makes the first
candidate almost always free. Allocations carry the pod's UID, so a restarted
controller finds and reuses what it had claimed before it died.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from controller.errors import TemporaryError
from kube.kinds import IP_ALLOCATIONS
from kube import AlreadyExists, Conflict, Kube, NotFound, Obj
from podnetwork import names
from podnetwork.ipam import Pool, allocation_name
from podnetwork.params import IPAddress

log = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 64


@dataclass(frozen=True)
class Held:
    name: str
    network: str
    address: IPAddress
    pod_uid: str


class PoolExhausted(TemporaryError):
    pass


class Allocator:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._used: dict[str, set[IPAddress]] = defaultdict(set)
        self._by_pod: dict[str, dict[str, Held]] = defaultdict(dict)  # uid -> name -> Held
        self._cursor: dict[tuple[str, int], int] = {}

    def load(self) -> int:
        """Read every existing claim (at start-up, before any allocation)."""
        items = self.kube.list(IP_ALLOCATIONS)
        with self._lock:
            self._used.clear()
            self._by_pod.clear()
            for obj in items:
                self._remember(_held(obj))
        return len(items)

    def _remember(self, held: Held) -> None:
        self._used[held.network].add(held.address)
        self._by_pod[held.pod_uid][held.name] = held

    def _forget(self, held: Held) -> None:
        self._used[held.network].discard(held.address)
        self._by_pod[held.pod_uid].pop(held.name, None)
        if not self._by_pod[held.pod_uid]:
            del self._by_pod[held.pod_uid]

    def used(self, network: str) -> frozenset[IPAddress]:
        """The addresses held on a network (pods' and Services'), from memory."""
        with self._lock:
            return frozenset(self._used.get(network, ()))

    def held_by(self, pod_uid: str) -> list[Held]:
        with self._lock:
            return list(self._by_pod.get(pod_uid, {}).values())

    def pod_uids(self) -> set[str]:
        with self._lock:
            return set(self._by_pod)

    def allocate(self, pod: Obj, network: str, pool: Pool) -> IPAddress:
        """The pod's address in `network` from `pool`: the one it holds already, or a new claim."""
        uid = pod["metadata"]["uid"]
        for held in self.held_by(uid):
            if held.network == network and held.address.version == pool.subnet.version:
                return held.address
        for _ in range(MAX_CLAIM_ATTEMPTS):
            ip = self._reserve(network, pool)
            if self._claim(pod, network, ip):
                return ip
        raise TemporaryError(f"could not claim an address in {network} after {MAX_CLAIM_ATTEMPTS} tries", 1.0)

    def _reserve(self, network: str, pool: Pool) -> IPAddress:
        key = (network, pool.subnet.version)
        with self._lock:
            ip = pool.first_free(self._used[network], self._cursor.get(key, 0))
            if ip is None:
                raise PoolExhausted(f"PodNetwork {network!r}: no free IPv{pool.subnet.version} address left in "
                                    f"{pool.subnet} ({pool.size()} assignable)", delay=10.0)
            self._used[network].add(ip)
            # Hand out addresses round the pool, so a freed one is not reused at once.
            self._cursor[key] = int(ip) - int(pool.subnet.network_address) + 1
            return ip

    def _claim(self, pod: Obj, network: str, ip: IPAddress) -> bool:
        meta = pod["metadata"]
        held = Held(allocation_name(network, ip), network, ip, meta["uid"])
        labels = {names.ALLOCATION_POD_UID_LABEL: meta["uid"]}
        if len(network) <= 63:
            labels[names.ALLOCATION_NETWORK_LABEL] = network
        body = {
            "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.IP_ALLOCATION_KIND,
            "metadata": {"name": held.name, "labels": labels},
            "spec": {"podNetworkName": network, "address": str(ip), "podNamespace": meta["namespace"],
                     "podName": meta["name"], "podUID": meta["uid"]},
        }
        try:
            self.kube.create(IP_ALLOCATIONS, body)
        except AlreadyExists:
            existing = self.kube.find(IP_ALLOCATIONS, held.name)
            if existing is None or existing["spec"]["podUID"] != meta["uid"]:
                return False  # someone else's: keep it marked used and try the next one
        except BaseException:
            with self._lock:
                self._used[network].discard(ip)
            raise
        with self._lock:
            self._remember(held)
        return True

    def release(self, pod_uid: str) -> int:
        """Free every address the pod holds; missing objects count as freed."""
        held = self.held_by(pod_uid)
        names_ = {h.name for h in held}
        # Also ask the apiserver, in case a claim was made by an earlier run and not loaded.
        for obj in self.kube.list(IP_ALLOCATIONS, label_selector=f"{names.ALLOCATION_POD_UID_LABEL}={pod_uid}"):
            if obj["metadata"]["name"] not in names_:
                held.append(_held(obj))
        for h in held:
            try:
                self.kube.delete(IP_ALLOCATIONS, h.name)
            except (NotFound, Conflict):
                pass  # freed already
            with self._lock:
                self._forget(h)
        return len(held)

    def sweep(self, live_pod_uids: Callable[[], set[str]]) -> int:
        """Free allocations whose pod is gone or finished. The claims are listed before
        the pods, so a claim made meanwhile always has its (new) pod in the second list."""
        claimed = {_held(o).pod_uid for o in self.kube.list(IP_ALLOCATIONS)}
        live = live_pod_uids()
        freed = 0
        for uid in claimed:
            if uid not in live:
                freed += self.release(uid)
        return freed


def _held(obj: Obj) -> Held:
    spec = obj["spec"]
    return Held(obj["metadata"]["name"], spec["podNetworkName"], ipaddress.ip_address(spec["address"]),
                spec["podUID"])
