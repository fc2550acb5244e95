"""What the compiler reads of a pod, read once: `PodFacts`.

Pods change often in ways no entry depends on (status conditions, resource
versions); the incremental compiler (agent.compile.incremental) compares a
changed pod's facts with the ones it had and does nothing when they are equal.
The from-scratch functions read pods through the same facts, so both paths
share one reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.compile.objects import Obj, annotations_of, container_ports, key_of, labels, pod_addresses, running
from podnetwork.addresses import network_ids as allocated_network_ids


@dataclass(frozen=True)
class PodFacts:
    namespace: str
    name: str
    node: str  # "" while unscheduled
    running: bool
    addresses: Mapping[str, tuple[str, ...]]  # network name -> addresses (both families), never empty
    allocated: Mapping[str, int]  # network name -> id, from the controller's allocations
    labels: Mapping[str, str]
    named_ports: Mapping[tuple[str, str], int]

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def layer2(self) -> set[str]:
        """The networks allocated to the pod without an address on them (address-less)."""
        return {network for network in self.allocated if network not in self.addresses}


def pod_facts(pod: Obj) -> PodFacts:
    namespace, name = key_of(pod)
    return PodFacts(namespace, name, str((pod.get("spec") or {}).get("nodeName") or ""), running(pod),
                    {net: tuple(ips) for net, ips in pod_addresses(pod).items()},
                    allocated_network_ids(annotations_of(pod)), dict(labels(pod)), container_ports(pod))
