"""Per-network status of a pod, from where the binding says it is: a JSON list
in an annotation ({podNetworkName, interfaceName, ips, mac}) or the DRA
ResourceClaims' status.devices[].networkData."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from suite.binding import Binding
from suite.kube import as_dict
from suite.pods import CLAIM_NETWORK_LABEL

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class StatusError(ValueError):
    """The status exists but cannot be read: the implementation's fault, named."""


@dataclass(frozen=True)
class Attached:
    network: str
    attachment: str | None
    interface: str
    ips: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]
    prefixed: bool  # whether the status gave prefix lengths
    mac: str | None

    def addresses(self) -> frozenset[IP]:
        return frozenset(i.ip for i in self.ips)

    def address(self, version: int = 4) -> IP | None:
        return next((i.ip for i in self.ips if i.version == version), None)


def _ips(raw: Any, where: str) -> tuple[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...], bool]:
    if not isinstance(raw, list):
        raise StatusError(f"{where}: ips must be a list, got {raw!r}")
    try:
        return tuple(ipaddress.ip_interface(str(ip)) for ip in raw), all("/" in str(ip) for ip in raw)
    except ValueError as err:
        raise StatusError(f"{where}: {err}") from err


def from_annotation(text: str, key: str) -> list[Attached]:
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as err:
        raise StatusError(f"annotation {key}: not JSON ({err})") from err
    if not isinstance(entries, list):
        raise StatusError(f"annotation {key}: expected a JSON list")
    out = []
    for i, e in enumerate(entries):
        where = f"annotation {key}[{i}]"
        if not isinstance(e, dict) or not e.get("podNetworkName") or not e.get("interfaceName"):
            raise StatusError(f"{where}: needs podNetworkName and interfaceName, got {e!r}")
        ips, prefixed = _ips(e.get("ips", []), where)
        out.append(Attached(str(e["podNetworkName"]), e.get("podNetworkAttachmentName"), str(e["interfaceName"]),
                            ips, prefixed, e.get("mac")))
    return out


def from_claims(custom: client.CustomObjectsApi, pod: Any) -> list[Attached]:
    out = []
    for ref in pod.spec.resource_claims or []:
        name = ref.resource_claim_name
        if not name:
            continue
        claim = as_dict(custom.get_namespaced_custom_object("resource.k8s.io", "v1", pod.metadata.namespace,
                                                            "resourceclaims", name))
        network = ((claim.get("metadata") or {}).get("labels") or {}).get(CLAIM_NETWORK_LABEL)
        for i, device in enumerate((claim.get("status") or {}).get("devices") or []):
            data = device.get("networkData") or {}
            if not network or not data.get("interfaceName"):
                continue
            ips, prefixed = _ips(data.get("ips") or [], f"ResourceClaim {name} status.devices[{i}].networkData")
            out.append(Attached(network, None, str(data["interfaceName"]), ips, prefixed,
                                data.get("hardwareAddress")))
    return out


def read(binding: Binding, custom: client.CustomObjectsApi, pod: Any) -> list[Attached] | None:
    """The pod's attachments, or None while the implementation has reported nothing."""
    if binding.status_annotation:
        text = (pod.metadata.annotations or {}).get(binding.status_annotation)
        return from_annotation(text, binding.status_annotation) if text else None
    found = from_claims(custom, pod)
    return found or None


def on(attached: list[Attached], network: str) -> Attached:
    mine = [a for a in attached if a.network == network]
    if len(mine) != 1:
        raise StatusError(f"expected one attachment to {network}, status has {[a.network for a in attached]}")
    return mine[0]
