"""The attachment record: what the agent made for one CNI attachment.

One record per (network name, container id, CNI_IFNAME), the spec's key for
plugin state. It is written before anything is created (phase ADDING, every
name the ADD will create listed) and again when the ADD completes (READY,
with the result), so DEL, CHECK and GC work after a restart and an ADD cut
short is undone exactly. Frozen: a verb derives the next record with
`dataclasses.replace`, never by mutating a shared dict.

The JSON form keeps the field names records have always had on disk, so an
agent reads the records an earlier version wrote.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.plan import InterfacePlan
from datapath.ports import NetworkId, PortAttachment


class Phase(enum.StrEnum):
    ADDING = "adding"
    READY = "ready"


class Eth0Mode(enum.StrEnum):
    """Who serves CNI_IFNAME (the default network) for this attachment."""

    ROUTED = "routed"  # the agent: a /32 of the node's pod range behind a host-side veth
    DELEGATED = "delegated"  # the node's primary conflist, run by the agent
    CHAINED = "chained"  # an earlier plugin of the chain made it (prevResult holds it)
    NONE = "none"  # nobody: secondary interfaces only


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class OwnedLink:
    """A link the attachment created; `mac` marks it ours where a name could be reused."""

    netns: str | None  # None: the agent's own namespace
    name: str
    mac: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"netns": self.netns, "name": self.name}
        if self.mac is not None:
            doc["mac"] = self.mac
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OwnedLink:
        return cls(doc.get("netns"), str(doc["name"]), doc.get("mac"))


@dataclass(frozen=True)
class PlannedInterface:
    """A secondary interface as recorded (the plan's facts CHECK and status need)."""

    name: str
    network: str
    attachment: str | None
    network_id: int
    kind: str
    peer: str
    mac: str
    mtu: int
    ips: tuple[str, ...]
    gateways: tuple[str, ...]
    routes: tuple[str, ...]
    default: bool

    @classmethod
    def of(cls, p: InterfacePlan) -> PlannedInterface:
        return cls(
            name=p.name, network=p.network, attachment=p.attachment, network_id=p.network_id,
            kind=p.kind, peer=p.peer, mac=p.mac, mtu=p.mtu,
            ips=tuple(str(ip) for ip in p.ips), gateways=tuple(str(g) for g in p.gateways),
            routes=tuple(str(r.dst) for r in p.routes), default=p.default_gw4 or p.default_gw6,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "network": self.network, "attachment": self.attachment,
            "networkId": self.network_id, "kind": self.kind, "peer": self.peer, "mac": self.mac,
            "mtu": self.mtu, "ips": list(self.ips), "gateways": list(self.gateways),
            "routes": list(self.routes), "default": self.default,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PlannedInterface:
        return cls(
            name=d["name"], network=d["network"], attachment=d.get("attachment"),
            network_id=int(d["networkId"]), kind=d["kind"], peer=d["peer"], mac=d["mac"],
            mtu=int(d["mtu"]), ips=tuple(d["ips"]), gateways=tuple(d["gateways"]),
            routes=tuple(d["routes"]), default=bool(d["default"]),
        )


def port_to_json(p: PortAttachment) -> dict[str, Any]:
    return {
        "podUID": p.pod_uid, "namespace": p.namespace, "podName": p.pod_name, "network": p.network,
        "networkId": int(p.network_id), "interface": p.interface, "representor": p.representor,
        "ips": list(p.ips), "mac": p.mac, "mtu": p.mtu, "gateways": list(p.gateways),
    }


def port_from_json(d: Mapping[str, Any]) -> PortAttachment:
    return PortAttachment(
        pod_uid=d["podUID"], namespace=d["namespace"], pod_name=d["podName"], network=d["network"],
        network_id=NetworkId(d["networkId"]), interface=d["interface"], representor=d["representor"],
        ips=tuple(d["ips"]), mac=d["mac"], mtu=d["mtu"], gateways=tuple(d.get("gateways") or ()),
    )


@dataclass(frozen=True)
class AttachmentRecord:
    network: str
    container_id: str
    ifname: str
    netns: str
    pod: PodRef
    mode: Eth0Mode
    group: int  # the link group of the pod-side links (agent.plan.link_group)
    phase: Phase = Phase.ADDING
    links: tuple[OwnedLink, ...] = ()
    plans: tuple[PlannedInterface, ...] = ()
    args: str = ""  # CNI_ARGS as given, passed on to delegated plugins
    path: tuple[str, ...] = ()  # CNI_PATH as given (or the agent's bin dirs)
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    delegate: str | None = None  # DELEGATED: the primary conflist's path
    default_ip: str | None = None  # ROUTED: eth0's address in the node's pod range
    delegate_result: Mapping[str, Any] | None = None  # DELEGATED: the primary's ADD result
    result: Mapping[str, Any] | None = None  # READY: the CNI result returned
    ports: tuple[PortAttachment, ...] = ()  # veth ports handed to the datapath

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "network": self.network, "containerID": self.container_id, "ifname": self.ifname,
            "netns": self.netns,
            "pod": {"namespace": self.pod.namespace, "name": self.pod.name, "uid": self.pod.uid},
            "mode": self.mode.value, "phase": self.phase.value, "group": self.group,
            "links": [link.to_json() for link in self.links],
            "plans": [p.to_json() for p in self.plans],
            "args": self.args, "path": list(self.path), "runtimeConfig": dict(self.runtime_config),
            "ports": [port_to_json(p) for p in self.ports],
        }
        optional = {"delegate": self.delegate, "defaultIP": self.default_ip,
                    "delegateResult": self.delegate_result, "result": self.result}
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AttachmentRecord:
        pod = doc.get("pod") or {}
        return cls(
            network=doc["network"], container_id=doc["containerID"], ifname=doc["ifname"],
            netns=doc.get("netns") or "",
            pod=PodRef(pod.get("namespace", ""), pod.get("name", ""), pod.get("uid", "")),
            mode=Eth0Mode(doc["mode"]) if "mode" in doc else _mode_of_old_record(doc),
            phase=Phase(doc.get("phase", Phase.ADDING)), group=int(doc.get("group") or 0),
            links=tuple(OwnedLink.from_json(d) for d in doc.get("links") or ()),
            plans=tuple(PlannedInterface.from_json(d) for d in doc.get("plans") or ()),
            args=doc.get("args") or "", path=tuple(doc.get("path") or ()),
            runtime_config=doc.get("runtimeConfig") or {},
            delegate=doc.get("delegate"), default_ip=doc.get("defaultIP"),
            delegate_result=doc.get("delegateResult"), result=doc.get("result"),
            ports=tuple(port_from_json(d) for d in doc.get("ports") or ()),
        )


def _mode_of_old_record(doc: Mapping[str, Any]) -> Eth0Mode:
    """Records written before `mode` existed encoded it by which keys were present."""
    if "delegate" in doc:
        return Eth0Mode.DELEGATED
    if "defaultIP" in doc:
        return Eth0Mode.ROUTED
    return Eth0Mode.NONE
