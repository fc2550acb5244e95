"""Reading the parts of plain Kubernetes object dicts the compiler needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from datapath.entries import parse_ip
from podnetwork.addresses import addresses_by_network
from podnetwork.addresses import network_ids as allocated_network_ids
from podnetwork.names import POD_NETWORK_ANNOTATION

Obj = Mapping[str, Any]


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> tuple[str, str]:
    """(namespace or "", name): an object's identity, and the order in which
    objects that claim the same entry are resolved (the first wins), so the
    result never depends on the order the caches list them in."""
    m = meta(obj)
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def by_key(objs: Iterable[Obj]) -> list[Obj]:
    return sorted(objs, key=key_of)


def labels(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("labels") or {}


def annotations_of(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("annotations") or {}


def network_of(obj: Obj) -> str | None:
    """The secondary network a Service or NetworkPolicy applies on (None: the default network)."""
    network: str | None = annotations_of(obj).get(POD_NETWORK_ANNOTATION)
    return network


def ip_version(text: str) -> int:
    """4 or 6 for an address, 0 for anything else."""
    try:
        return parse_ip(text)[0]
    except ValueError:
        return 0


def is_ipv4(text: str) -> bool:
    return ip_version(text) == 4


def pod_addresses(pod: Obj) -> dict[str, list[str]]:
    """Addresses (both families) of a pod per network name (podnetwork.addresses' rule)."""
    found = addresses_by_network(annotations_of(pod))
    return {net: valid for net, ips in found.items() if (valid := [a for a in ips if ip_version(a)])}


def running(pod: Obj) -> bool:
    """Pods in Succeeded/Failed no longer hold their addresses."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def container_ports(pod: Obj) -> dict[tuple[str, str], int]:
    """Named container ports: (name, protocol) -> number."""
    out: dict[tuple[str, str], int] = {}
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("name"):
                out[(p["name"], p.get("protocol", "TCP"))] = int(p["containerPort"])
    return out


def selector_matches(selector: Mapping[str, Any] | None, have: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if have.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and have.get(key) not in values:
            return False
        if op == "NotIn" and key in have and have[key] in values:
            return False
        if op == "Exists" and key not in have:
            return False
        if op == "DoesNotExist" and key in have:
            return False
    return True


def network_ids(pods: Iterable[Obj]) -> dict[str, int]:
    """Network name -> id (VNI), as the controller wrote them into pods' allocations;
    pods that disagree (a network recreated with another id) are read in key order, the first wins."""
    out: dict[str, int] = {}
    for pod in by_key(pods):
        for name, net in allocated_network_ids(annotations_of(pod)).items():
            out.setdefault(name, net)
    return out
