"""Pod bodies as the binding shapes them: the KEP's networks list (in the
binding's annotation) or one DRA ResourceClaim per network; and the agnhost
probe pods the data-plane tests use."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from string import Template
from typing import Any

from suite.binding import Binding

# The sandbox image of kubelet 1.34 (containerd pins it too): a node that runs pods has it, no pull needed.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
HTTP_PORT, UDP_PORT, ALT_PORT = 8080, 8081, 8082
CLAIM_NETWORK_LABEL = "kep-conformance.multinetwork.x-k8s.io/network"
PROBE_LABEL = "kep-conformance.multinetwork.x-k8s.io/probe"


@dataclass(frozen=True)
class NetRequest:
    """One entry of the KEP's Pod `networks` list."""

    network: str | None = None
    attachment: str | None = None
    interface: str | None = None
    gw4: bool = False
    gw6: bool = False

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.network:
            out["podNetworkName"] = self.network
        if self.attachment:
            out["podNetworkAttachmentName"] = self.attachment
        if self.interface:
            out["interfaceName"] = self.interface
        if self.gw4:
            out["isDefaultGW4"] = True
        if self.gw6:
            out["isDefaultGW6"] = True
        return out


@dataclass
class PodPlan:
    """A pod body and the objects that must exist before it (ResourceClaims)."""

    body: dict[str, Any]
    claims: list[dict[str, Any]] = field(default_factory=list)


def _security() -> dict[str, Any]:
    # Restricted Pod Security: the probes need no privilege at all.
    return {"runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def plain_container(image: str = PAUSE_IMAGE) -> dict[str, Any]:
    return {"name": "app", "image": image, "securityContext": _security()}


def probe_containers(image: str) -> list[dict[str, Any]]:
    """agnhost netexec on 8080 (HTTP) and 8081 (UDP), and a second netexec on 8082 for port rules."""
    def netexec(name: str, args: list[str], ports: list[dict[str, Any]], ready: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "image": image, "args": ["netexec", *args], "ports": ports,
                "securityContext": _security(), "readinessProbe": {**ready, "periodSeconds": 2}}
    return [
        netexec("agnhost", [f"--http-port={HTTP_PORT}", f"--udp-port={UDP_PORT}"],
                [{"containerPort": HTTP_PORT, "name": "http", "protocol": "TCP"},
                 {"containerPort": UDP_PORT, "name": "udp", "protocol": "UDP"}],
                {"httpGet": {"path": "/healthz", "port": HTTP_PORT}}),
        # No UDP server here (the first one holds 8081), and netexec's /healthz
        # stays 412 without one: this container is ready once it listens.
        netexec("agnhost-alt", [f"--http-port={ALT_PORT}", "--udp-port=-1"],
                [{"containerPort": ALT_PORT, "name": "alt", "protocol": "TCP"}], {"tcpSocket": {"port": ALT_PORT}}),
    ]


def plan(binding: Binding, name: str, networks: list[NetRequest] | str | None, *,
         labels: dict[str, str] | None = None, node: str | None = None, probe_image: str | None = None,
         **spec: Any) -> PodPlan:
    """The pod `name` asking for `networks` (None: ask for nothing; str: raw annotation text)."""
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    body_spec: dict[str, Any] = {
        "containers": probe_containers(probe_image) if probe_image else [plain_container()],
        "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
    }
    if probe_image:
        metadata["labels"][PROBE_LABEL] = "true"
    if node:
        # A node selector, never nodeName: the scheduler (and any active validation) stays in the path.
        body_spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    body_spec.update(spec)
    made = PodPlan({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body_spec})
    if networks is None:
        return made
    if binding.networks_annotation:
        text = networks if isinstance(networks, str) else json.dumps([n.entry() for n in networks])
        metadata["annotations"] = {binding.networks_annotation: text}
        return made
    if isinstance(networks, str):
        raise ValueError("raw networks text needs a binding with pods.networks.annotation")
    _claims(binding, made, name, networks)
    return made


def _claims(binding: Binding, made: PodPlan, pod: str, networks: list[NetRequest]) -> None:
    """DRA binding: one ResourceClaim per network from the template, `${network}` substituted."""
    template = binding.resource_claim or {}
    spec = made.body["spec"]
    spec["resourceClaims"] = []
    for i, request in enumerate(n for n in networks if n.network and n.network != "default"):
        claim_name = f"{pod}-net{i}"
        text = Template(json.dumps(template.get("spec") or {})).safe_substitute(network=request.network)
        made.claims.append({
            "apiVersion": template.get("apiVersion", "resource.k8s.io/v1"), "kind": "ResourceClaim",
            "metadata": {"name": claim_name, "labels": {CLAIM_NETWORK_LABEL: str(request.network)}},
            "spec": json.loads(text)})
        spec["resourceClaims"].append({"name": f"net{i}", "resourceClaimName": claim_name})
        for container in spec["containers"]:
            container.setdefault("resources", {}).setdefault("claims", []).append({"name": f"net{i}"})


def with_annotation(made: PodPlan, key: str, value: str) -> PodPlan:
    body = copy.deepcopy(made.body)
    body["metadata"].setdefault("annotations", {})[key] = value
    return PodPlan(body, made.claims)
