"""The network-status annotations the node agent writes once interfaces exist.

Two forms of the same facts: the project's own
(`multinetwork.networking.x-k8s.io/network-status`, one entry per attached
interface, schema below) and the Network Plumbing WG's
(`k8s.v1.cni.cncf.io/network-status`), so existing tools read it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from podnetwork.jsondoc import decode
from podnetwork.names import DEFAULT_NETWORK, NETWORK_STATUS_ANNOTATION

NETWORK_STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NETWORK_STATUS_ANNOTATION,
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["podNetworkName", "interfaceName", "ips"],
        "properties": {
            "podNetworkName": {"type": "string", "minLength": 1},
            "podNetworkAttachmentName": {"type": "string", "minLength": 1},
            "interfaceName": {"type": "string", "minLength": 1, "maxLength": 15},
            "ips": {"type": "array", "items": {"type": "string"}},
            "mac": {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"},
            "gateways": {"type": "array", "items": {"type": "string"}},
            "default": {"type": "boolean"},
        },
    },
}


class NetworkStatusError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class InterfaceStatus:
    """One attached interface of a pod."""

    pod_network_name: str
    interface_name: str
    ips: tuple[str, ...]  # with prefix length, as assigned
    mac: str = ""
    gateways: tuple[str, ...] = ()
    default: bool = False
    pod_network_attachment_name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"podNetworkName": self.pod_network_name, "interfaceName": self.interface_name,
                               "ips": list(self.ips)}
        if self.mac:  # unknown for a delegated eth0 whose plugin reported none
            out["mac"] = self.mac
        out.update(gateways=list(self.gateways), default=self.default)
        if self.pod_network_attachment_name:
            out["podNetworkAttachmentName"] = self.pod_network_attachment_name
        return out

    def to_npwg(self, namespace: str) -> dict[str, Any]:
        """The NPWG entry: a network is named `namespace/name` except the default."""
        name = self.pod_network_name
        return {
            "name": name if name == DEFAULT_NETWORK else f"{namespace}/{name}",
            "interface": self.interface_name,
            "ips": [ip.split("/")[0] for ip in self.ips],
            "mac": self.mac,
            "default": self.default,
            "dns": {},
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> InterfaceStatus:
        return cls(
            pod_network_name=item["podNetworkName"], interface_name=item["interfaceName"],
            ips=tuple(item["ips"]), mac=item.get("mac", ""), gateways=tuple(item.get("gateways") or ()),
            default=bool(item.get("default", False)),
            pod_network_attachment_name=item.get("podNetworkAttachmentName", ""),
        )


def network_status_errors(text: str) -> list[str]:
    """Every schema error of a network-status annotation value, each with its path."""
    _, errors = decode(text, NETWORK_STATUS_SCHEMA, f"annotation {NETWORK_STATUS_ANNOTATION}")
    return errors


def parse_network_status(text: str) -> tuple[InterfaceStatus, ...]:
    raw, errors = decode(text, NETWORK_STATUS_SCHEMA, f"annotation {NETWORK_STATUS_ANNOTATION}")
    if errors:
        raise NetworkStatusError(errors)
    return tuple(InterfaceStatus.from_json(item) for item in raw)


def encode_network_status(statuses: tuple[InterfaceStatus, ...]) -> str:
    return json.dumps([s.to_json() for s in statuses])


def encode_npwg_network_status(statuses: tuple[InterfaceStatus, ...], namespace: str) -> str:
    return json.dumps([s.to_npwg(namespace) for s in statuses])
