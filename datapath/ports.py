"""The seam between the node agent and the datapath.

The agent creates a pod's interfaces; each secondary interface is a veth whose
peer (the "representor", as a VF representor on a real IPU) ends in the node's
IPU network namespace. The agent then hands the attachment to a `Datapath`,
which programs forwarding, policy and services for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType, Protocol

NetworkId = NewType("NetworkId", int)  # the network's VNI, unique cluster-wide


@dataclass(frozen=True)
class PortAttachment:
    pod_uid: str
    namespace: str
    pod_name: str
    network: str  # PodNetwork name
    network_id: NetworkId
    interface: str  # name inside the pod, e.g. "net1"
    representor: str  # name of the peer link inside the IPU namespace
    ips: tuple[str, ...]  # CIDR notation, e.g. "10.10.0.5/24"
    mac: str
    mtu: int
    # The network's gateway addresses as the pod uses them; the IPU answers
    # neighbour discovery for IPv6 ones (IPv4 ones are answered by proxy ARP).
    gateways: tuple[str, ...] = ()


class Datapath(Protocol):
    def attach(self, port: PortAttachment) -> None:
        """Program the datapath for a new port; idempotent."""

    def detach(self, port: PortAttachment) -> None:
        """Remove everything programmed for the port; missing is fine."""
