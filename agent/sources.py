"""What the agent needs from the cluster, as interfaces (agent.kube implements them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.record import PodRef
from podnetwork.allocations import Allocation
from podnetwork.params import NetworkParams
from podnetwork.status import InterfaceStatus


@dataclass(frozen=True)
class PodNetworking:
    """What the cluster says about one pod's secondary networks."""

    pod: PodRef
    allocations: tuple[Allocation, ...] = ()
    params: Mapping[str, NetworkParams] = field(default_factory=dict)


class PodSource(Protocol):
    def networking(self, pod: PodRef) -> PodNetworking:
        """The pod's allocations and their networks' params; CniError(11) while unknown."""

    def synced(self) -> bool:
        """True once the caches hold a full listing."""


class Reporter(Protocol):
    def attached(self, pod: PodRef, statuses: tuple[InterfaceStatus, ...]) -> None:
        """Interfaces exist (and are programmed): write status, set readiness."""

    def failed(self, pod: PodRef, message: str) -> None:
        """An ADD failed: tell the pod's owner (an Event)."""

    def table_full(self, network: str, message: str) -> None:
        """The datapath left entries of `network` out for a full table (a port's
        attach, or the sync loop's state): tell the network's owner (an Event)."""
