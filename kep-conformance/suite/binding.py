"""The options file: who the implementation is and how it binds the KEP's API.

Implementations differ in what the KEP leaves open: the API group they serve
(multinet `multinetwork.networking.x-k8s.io`, kubernetes-sigs/multi-network
`multinetwork.networking.k8s.io`), whether PodNetworkAttachment exists,
provider parameters by reference or inline, how a pod asks for networks (the
KEP's list in an annotation, or DRA ResourceClaims), where per-network status
is read, and how Services and NetworkPolicies name their network. The file
says so; `load` refuses a bad file with every problem, each naming its field.
See implementations/*.yaml for complete examples.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from suite.report import IMPLEMENTATION_FIELDS

PARAMETER_MODES = ("refs", "inline", "none")
UNBOUND_POLICY = ("default", "all", "none")
NOT_READY_DELETE = "delete"
POLICY_FEATURES = ("NetworkPolicyIngress", "NetworkPolicyPerNetwork", "NetworkPolicyNamedPorts",
                   "NetworkPolicyEgress", "NetworkPolicyIPBlock", "NetworkPolicyUnbound",
                   "NetworkPolicyOverlappingNetworks")
SERVICE_FEATURES = ("ServiceEndpointSlices", "ServiceLoadBalancing", "ServiceNetworkIsolation",
                    "ServiceNamedTargetPort")


class BindingError(ValueError):
    def __init__(self, path: str, errors: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ParamsTemplate:
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    object: dict[str, Any] | None = None  # refs: the object to create (the suite names it)
    plural: str | None = None
    namespaced: bool = False
    inline: Any = None                    # inline: spec.parameters as written

    def family_subnet(self, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return next((s for s in self.subnets if s.version == version), None)


@dataclass(frozen=True)
class Binding:
    implementation: dict[str, Any]
    group: str
    version: str
    attachments: bool
    parameters_mode: str
    provider: str
    networks_annotation: str | None          # the KEP's Pod networks list, as JSON in this annotation
    resource_claim: dict[str, Any] | None    # or: a ResourceClaim template per network (${network})
    status_annotation: str | None            # per-network status: JSON list in this annotation
    scheduling_gate: str | None              # how a held pod shows when the cluster has no nodes
    templates: dict[str, tuple[ParamsTemplate, ...]]
    params_not_ready: str                    # "delete", or "replace" by the notReady template's spec
    policy_annotation: str | None
    policy_unbound: str
    service_annotation: str | None
    service_address_annotation: str | None
    slice_managed_by: str | None
    slice_network_label: str | None
    supported_features: tuple[str, ...]

    def template(self, kind: str, index: int = 0) -> ParamsTemplate | None:
        found = self.templates.get(kind) or ()
        return found[index % len(found)] if found else None

    def summary(self) -> dict[str, Any]:
        """The binding as the report states it."""
        return {
            "group": self.group, "version": self.version, "provider": self.provider,
            "podNetworkAttachment": self.attachments, "parameters": self.parameters_mode,
            "podNetworks": (f"annotation {self.networks_annotation}" if self.networks_annotation
                            else "ResourceClaim per network"),
            "status": (f"annotation {self.status_annotation}" if self.status_annotation
                       else "ResourceClaim status.devices[].networkData"),
            "policy": f"annotation {self.policy_annotation}" if self.policy_annotation else "none",
            "services": f"annotation {self.service_annotation}" if self.service_annotation else "none",
        }


def _get(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(data: Any, path: str, errors: list[str], required: bool = True) -> str | None:
    value = _get(data, path)
    if value is None or value == "":
        if required:
            errors.append(f"{path}: required")
        return None
    if not isinstance(value, str):
        errors.append(f"{path}: must be a string, got {value!r}")
        return None
    return value


def _template(raw: Any, path: str, mode: str, errors: list[str]) -> ParamsTemplate | None:
    if not isinstance(raw, dict):
        errors.append(f"{path}: must be a mapping")
        return None
    subnets = []
    for i, text in enumerate(raw.get("subnets") or []):
        try:
            subnets.append(ipaddress.ip_network(str(text)))
        except ValueError as err:
            errors.append(f"{path}.subnets[{i}]: {err}")
    if mode == "refs":
        obj = raw.get("object")
        if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or "/" not in obj["apiVersion"] \
                or not isinstance(obj.get("kind"), str):
            errors.append(f"{path}.object: a mapping with apiVersion (group/version) and kind is required "
                          "when api.parameters is refs")
            return None
        plural = _str(raw, "plural", errors)
        if plural is None:
            errors[-1] = f"{path}.plural: required when api.parameters is refs"
            return None
        return ParamsTemplate(tuple(subnets), object=obj, plural=plural, namespaced=bool(raw.get("namespaced")))
    if "inline" not in raw:
        errors.append(f"{path}.inline: required when api.parameters is inline")
        return None
    return ParamsTemplate(tuple(subnets), inline=raw["inline"])


def _templates(data: dict[str, Any], mode: str, errors: list[str]) -> dict[str, tuple[ParamsTemplate, ...]]:
    raw = data.get("parameters") or {}
    if mode == "none":
        return {}
    if not isinstance(raw, dict):
        errors.append("parameters: must be a mapping of distinct, overlapping, dualStack, notReady")
        return {}
    if "invalid" in raw:
        errors.append("parameters.invalid: renamed parameters.notReady (a change the apiserver admits that makes "
                      "the network not Ready: `delete`, or a template whose spec replaces the referenced one's)")
    out: dict[str, tuple[ParamsTemplate, ...]] = {}
    for kind in ("distinct", "overlapping", "dualStack", "notReady"):
        items = raw.get(kind)
        if items is None or (kind == "notReady" and isinstance(items, str)):
            continue
        items = items if isinstance(items, list) else [items]
        made = [_template(t, f"parameters.{kind}[{i}]", mode, errors) for i, t in enumerate(items)]
        out[kind] = tuple(t for t in made if t is not None)
    if len(out.get("distinct", ())) < 2:
        errors.append("parameters.distinct: at least two templates with disjoint subnets are required")
    if "overlapping" in out and len(out["overlapping"]) != 2:
        errors.append("parameters.overlapping: exactly two templates sharing a subnet")
    return out


def parse(data: Any, path: str = "options") -> Binding:
    errors: list[str] = []
    if not isinstance(data, dict):
        raise BindingError(path, ["expected a YAML mapping"])
    raw_impl = data.get("implementation")
    impl: dict[str, Any] = raw_impl if isinstance(raw_impl, dict) else {}
    for key in IMPLEMENTATION_FIELDS:
        if not impl.get(key):
            errors.append(f"implementation.{key}: required")
    if impl.get("contact") is not None and not isinstance(impl.get("contact"), list):
        errors.append("implementation.contact: must be a list")
    mode = _str(data, "api.parameters", errors) or "refs"
    if mode not in PARAMETER_MODES:
        errors.append(f"api.parameters: one of {', '.join(PARAMETER_MODES)}, got {mode!r}")
    networks_annotation = _str(data, "pods.networks.annotation", errors, required=False)
    claim = _get(data, "pods.networks.resourceClaim")
    if (networks_annotation is None) == (claim is None):
        errors.append("pods.networks: exactly one of annotation or resourceClaim")
    status_annotation = _str(data, "pods.status.annotation", errors, required=False)
    if status_annotation is None and _get(data, "pods.status.resourceClaim") is None:
        errors.append("pods.status: one of annotation or resourceClaim")
    unbound = _str(data, "policy.unbound", errors, required=False) or "default"
    if unbound not in UNBOUND_POLICY:
        errors.append(f"policy.unbound: one of {', '.join(UNBOUND_POLICY)}, got {unbound!r}")
    supported = data.get("supportedFeatures") or []
    if not isinstance(supported, list):
        errors.append("supportedFeatures: must be a list of feature names")
        supported = []
    binding = Binding(
        implementation=dict(impl), group=_str(data, "api.group", errors) or "",
        version=_str(data, "api.version", errors) or "", attachments=bool(_get(data, "api.attachments")),
        parameters_mode=mode, provider=_str(data, "api.provider", errors, required=False) or "",
        networks_annotation=networks_annotation, resource_claim=claim if isinstance(claim, dict) else None,
        status_annotation=status_annotation,
        scheduling_gate=_str(data, "pods.activeValidation.schedulingGate", errors, required=False),
        templates=_templates(data, mode, errors), params_not_ready=_not_ready(data, errors),
        policy_annotation=_str(data, "policy.annotation", errors, required=False), policy_unbound=unbound,
        service_annotation=_str(data, "services.annotation", errors, required=False),
        service_address_annotation=_str(data, "services.address.annotation", errors, required=False),
        slice_managed_by=_str(data, "services.endpointSlices.managedBy", errors, required=False),
        slice_network_label=_str(data, "services.endpointSlices.networkLabel", errors, required=False),
        supported_features=tuple(str(f) for f in supported),
    )
    if errors:
        raise BindingError(path, errors)
    return binding


def load(path: Path) -> Binding:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise BindingError(str(path), [str(err)]) from err
    return parse(data, str(path))


def _not_ready(data: dict[str, Any], errors: list[str]) -> str:
    """How the suite makes a Ready network's referenced parameters not Ready with a change
    the apiserver admits (static mistakes are refused at admission by a validating API).
    `delete` (the default) deletes the referenced object and makes it again to recover; a
    template replaces the object's spec, and the network's own template's spec recovers it."""
    raw = _get(data, "parameters.notReady")
    if raw is None or raw == NOT_READY_DELETE:
        return NOT_READY_DELETE
    if isinstance(raw, str):
        errors.append(f"parameters.notReady: {NOT_READY_DELETE!r} or a template, got {raw!r}")
    return "replace"


def impossible_features(binding: Binding) -> dict[str, str]:
    """Features this binding cannot express, with why (they stay out of the run)."""
    out = {}
    if not binding.attachments:
        out["PodNetworkAttachment"] = "the implementation serves no PodNetworkAttachment"
        out["AccessThroughAttachment"] = "the implementation serves no PodNetworkAttachment"
    if binding.networks_annotation is None:
        out["DefaultGatewaySelection"] = "pods attach through ResourceClaims, which carry no isDefaultGW4"
        out["PodNetworksStaticValidation"] = "pods attach through ResourceClaims: the KEP's networks list is not served"
    if binding.policy_annotation is None:
        for name in POLICY_FEATURES:
            out[name] = "the options file binds no NetworkPolicy to a network (policy.annotation)"
    if binding.service_annotation is None:
        for name in SERVICE_FEATURES:
            out[name] = "the options file binds no Service to a network (services.annotation)"
    if binding.template("overlapping") is None:
        out["OverlappingSubnets"] = "the options file gives no parameters.overlapping pair"
    if binding.template("dualStack") is None:
        out["DualStack"] = "the options file gives no parameters.dualStack template"
    if binding.status_annotation is None:
        out["NetworkSelfDiscovery"] = "per-network status is not in an annotation the downward API can expose"
    return out
