"""The CRDs of the multinet API, generated from this one definition.

`python -m podnetwork.crds --write` regenerates `podnetwork/crds/*.yaml`; a test
fails when the checked-in files differ from what this module produces.
Field rules follow KEP-3698 Phase I ("Validations", "Mutability"); the
provider parameters add CIDR, range, MTU and VNI rules in CEL so the apiserver
refuses bad objects with a readable message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from podnetwork import names, params

CRD_DIR = Path(__file__).parent / "crds"
Schema = dict[str, Any]


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _cidr(description: str) -> Schema:
    # Every CIDR of NetworkParams is refused with host bits set, as parse_params
    # refuses it (ipaddress.ip_network(strict=True)).
    return _str(description, maxLength=64, **{"x-kubernetes-validations": [
        {"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.0.0.0/24 or fd00::/64"},
        {"rule": "!isCIDR(self) || cidr(self) == cidr(self).masked()",
         "message": "must be in canonical form (no host bits set)"}]})


PARAMETERS_REF: Schema = {
    "type": "object",
    "description": "Points to a custom resource holding implementation-specific parameters.",
    "required": ["group", "kind", "name"],
    "properties": {
        "group": _str("API group of the resource, e.g. multinet.io.", maxLength=253),
        "kind": _str("Kind of the resource, e.g. NetworkParams.", maxLength=63),
        "name": _str("Name of the resource.", maxLength=253),
        "namespace": _str("Namespace of the resource, for namespaced kinds.", maxLength=63),
    },
}

PARAMETERS_REFS: Schema = {
    "type": "array", "maxItems": 16, "items": PARAMETERS_REF,
    "description": "Vendor- or implementation-specific parameters objects.",
}

CONDITION_TYPE_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                          r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

CONDITION: Schema = {
    "type": "object",
    "description": "A metav1.Condition.",
    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
    "properties": {
        # Lengths and patterns as metav1.Condition's own validation markers.
        "type": _str("Condition type, e.g. Ready.", maxLength=316, pattern=CONDITION_TYPE_PATTERN),
        "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "lastTransitionTime": _str("When the status last changed.", format="date-time"),
        "reason": _str("CamelCase reason.", maxLength=1024, minLength=1, pattern=CONDITION_REASON_PATTERN),
        "message": _str("Human-readable detail.", maxLength=32768),
    },
}

CONDITIONS_STATUS: Schema = {
    "type": "object",
    "properties": {"conditions": {
        "type": "array", "maxItems": 5, "items": CONDITION,
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        "description": "Known condition types: Ready, ParamsReady.",
    }},
}

POD_NETWORK_SPEC: Schema = {
    "type": "object",
    # Every field is optional (KEP-3698 PodNetworkSpec), so a PodNetwork without a
    # spec is valid and gets the defaults (enabled: true).
    "default": {},
    "description": "KEP-3698 PodNetworkSpec. Immutable except enabled.",
    "properties": {
        "enabled": {"type": "boolean", "default": True,
                    "description": "Administratively enable or disable the network."},
        "parametersRefs": PARAMETERS_REFS,
        "provider": _str("The implementation handling this PodNetwork, as a URL-like name.",
                         minLength=1, maxLength=253),
    },
    "x-kubernetes-validations": [
        {"rule": "has(self.provider) == has(oldSelf.provider) && "
                 "(!has(self.provider) || self.provider == oldSelf.provider)",
         "message": "spec.provider is immutable", "fieldPath": ".provider"},
        {"rule": "has(self.parametersRefs) == has(oldSelf.parametersRefs) && "
                 "(!has(self.parametersRefs) || self.parametersRefs == oldSelf.parametersRefs)",
         "message": "spec.parametersRefs is immutable", "fieldPath": ".parametersRefs"},
    ],
}

ATTACHMENT_SPEC: Schema = {
    "type": "object",
    "description": "KEP-3698 PodNetworkAttachmentSpec. Immutable.",
    "required": ["podNetworkName"],
    "properties": {
        "podNetworkName": _str("The PodNetwork this attachment connects to.", minLength=1, maxLength=253),
        "parametersRefs": PARAMETERS_REFS,
    },
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec is immutable"}],
}


# CEL has no address arithmetic. Host bit q of the gateway is 0 when masking the
# gateway to /q gives what masking it to /q-1 gives; the IPv4 broadcast address is
# the one without such a bit past the subnet's prefix. The suffixes are literals, not
# string(q), so the cost estimator knows their size.
_SUFFIXES = "[" + ", ".join(f"'/{q}'" for q in range(33)) + "]"
_BITS = "[" + ", ".join(str(q) for q in range(1, 33)) + "]"
_ZERO_HOST_BIT = (f"{_BITS}.exists(q, q > cidr(self.subnet).prefixLength() && "
                  f"cidr(self.gateway + {_SUFFIXES}[q]).masked().ip() == "
                  f"cidr(self.gateway + {_SUFFIXES}[q - 1]).masked().ip())")


def _usable_subnet(version: int) -> str:
    """The subnet passes its own rules. As in parse_params, the gateway and the excludes are
    judged against the subnet only then: one bad subnet is one error, not three."""
    return (f"isCIDR(self.subnet) && cidr(self.subnet) == cidr(self.subnet).masked() && "
            f"cidr(self.subnet).ip().family() == {version}")


def _gateway_rules(version: int) -> list[Schema]:
    """The IPAM reserves the network address (IPv4 network, IPv6 subnet-router anycast, RFC 4291
    2.6.1) and the IPv4 broadcast address; neither can be the gateway. IPv6 has no broadcast."""
    judged = f"!has(self.gateway) || !isIP(self.gateway) || !({_usable_subnet(version)}) || "
    inside = judged + "!cidr(self.subnet).containsIP(self.gateway) || "
    rules = [
        {"rule": judged + "cidr(self.subnet).containsIP(self.gateway)",
         "message": "gateway must be an IP address inside the subnet", "fieldPath": ".gateway"},
        {"rule": inside + "!(ip(self.gateway) == cidr(self.subnet).ip())",
         "message": "gateway must not be the network address of the subnet", "fieldPath": ".gateway"},
    ]
    if version == 4:
        rules.append({"rule": inside + _ZERO_HOST_BIT, "fieldPath": ".gateway",
                      "message": "gateway must not be the broadcast address of the subnet"})
    return rules


def _excludes_rules(version: int) -> list[Schema]:
    """A range of the other family is refused on its own, whatever the subnet (as parse_params)."""
    family = f"cidr(e).ip().family() == {version}"
    return [
        {"rule": f"!has(self.excludes) || self.excludes.all(e, !isCIDR(e) || {family})",
         "message": f"every excludes range must be an IPv{version} CIDR", "fieldPath": ".excludes"},
        {"rule": f"!has(self.excludes) || !({_usable_subnet(version)}) || self.excludes.all(e, "
                 f"!isCIDR(e) || !({family}) || cidr(self.subnet).containsCIDR(e))",
         "message": "every excludes range must lie inside the subnet", "fieldPath": ".excludes"},
    ]


def _family(version: int) -> Schema:
    gateway = _str("Gateway address inside the subnet; never handed to a pod.", maxLength=45, **{
        "x-kubernetes-validations": [{"rule": "isIP(self)", "message": "must be an IP address such as "
                                                                       "10.0.0.1 or fd00::1"}]})
    return {
        "type": "object",
        "required": ["subnet"],
        "properties": {
            "subnet": _cidr(f"The IPv{version} subnet pods get addresses from."),
            "gateway": gateway,
            "excludes": {"type": "array", "maxItems": params.MAX_EXCLUDES, "items": _cidr("Excluded range."),
                         "description": "Ranges inside the subnet never handed to pods."},
        },
        "x-kubernetes-validations": [
            {"rule": f"!isCIDR(self.subnet) || cidr(self.subnet).ip().family() == {version}",
             "message": f"subnet must be an IPv{version} CIDR", "fieldPath": ".subnet"},
            *_gateway_rules(version),
            *_excludes_rules(version),
        ],
    }


NETWORK_PARAMS_SPEC: Schema = {
    "type": "object",
    "required": ["topology"],
    "properties": {
        "topology": _str("L2: one broadcast domain across nodes; L3: routed per node.",
                         enum=list(params.TOPOLOGIES)),
        "ipv4": _family(4),
        "ipv6": _family(6),
        "mtu": {"type": "integer", "minimum": params.MTU_MIN, "maximum": params.MTU_MAX,
                "default": params.MTU_DEFAULT, "description": "MTU of pod interfaces."},
        "networkId": {"type": "integer", "minimum": params.NETWORK_ID_MIN, "maximum": params.NETWORK_ID_MAX,
                      "description": "VXLAN network id; allocated by the controller when omitted."},
        "interfaceKind": _str("How pod interfaces are made.", enum=list(params.INTERFACE_KINDS),
                              default="veth"),
        "uplink": _str("Parent link of macvlan interfaces.", minLength=1, maxLength=params.UPLINK_MAX),
        "serviceCIDRs": {"type": "array", "maxItems": params.MAX_SERVICE_CIDRS,
                         "items": _cidr("Service range of this network.")},
    },
    "x-kubernetes-validations": [
        # Neither family is an address-less (layer 2) network: no routing, no Services.
        {"rule": "!has(self.topology) || self.topology != 'L3' || has(self.ipv4) || has(self.ipv6)",
         "message": "L3 routes addresses; a network without ipv4 or ipv6 is L2", "fieldPath": ".topology"},
        {"rule": "has(self.ipv4) || has(self.ipv6) || !has(self.serviceCIDRs) || size(self.serviceCIDRs) == 0",
         "message": "a network without ipv4 or ipv6 has no Services", "fieldPath": ".serviceCIDRs"},
        {"rule": "!has(self.interfaceKind) || self.interfaceKind != 'macvlan' || has(self.uplink)",
         "message": "uplink is required when interfaceKind is macvlan", "fieldPath": ".uplink",
         "reason": "FieldValueRequired"},
    ],
}

NETWORK_PARAMS_STATUS: Schema = {
    "type": "object",
    "properties": {
        "networkId": {"type": "integer", "minimum": params.NETWORK_ID_MIN, "maximum": params.NETWORK_ID_MAX,
                      "description": "The effective network id, set by the controller."},
        **CONDITIONS_STATUS["properties"],
    },
}

IP_ALLOCATION_SPEC: Schema = {
    "type": "object",
    "required": ["podNetworkName", "address", "podNamespace", "podName", "podUID"],
    "properties": {
        "podNetworkName": _str("The network the address belongs to."),
        "address": _str("The allocated address."),
        "podNamespace": _str("Namespace of the pod holding the address."),
        "podName": _str("Name of the pod holding the address."),
        "podUID": _str("UID of the pod holding the address."),
    },
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec is immutable"}],
}

NETWORK_ID_CLAIM_SPEC: Schema = {
    "type": "object",
    "required": ["networkId"],
    "properties": {
        "networkId": {"type": "integer", "minimum": params.NETWORK_ID_MIN, "maximum": params.NETWORK_ID_MAX},
        "networkParams": _str("The NetworkParams holding this id."),
        "podNetwork": _str("The PodNetwork without parameters (an address-less network) holding this id."),
    },
    "x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": "spec is immutable"},
        {"rule": "has(self.networkParams) != has(self.podNetwork)",
         "message": "exactly one of networkParams or podNetwork holds the id"}],
}

READY_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
]
AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crd(*, group: str, kind: str, plural: str, scope: str, short: list[str], spec: Schema,
        status: Schema | None, columns: list[Schema], description: str) -> Schema:
    """One CustomResourceDefinition (apiextensions.k8s.io/v1) with a single served version."""
    required = {} if "default" in spec else {"required": ["spec"]}
    schema: Schema = {"type": "object", "description": description, **required, "properties": {"spec": spec}}
    version: Schema = {"name": names.VERSION, "served": True, "storage": True}
    if status is not None:
        schema["properties"]["status"] = status
        version["subresources"] = {"status": {}}
    version["schema"] = {"openAPIV3Schema": schema}
    version["additionalPrinterColumns"] = [*columns, AGE]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                      "listKind": f"{kind}List", "shortNames": short},
            "versions": [version],
        },
    }


def all_crds() -> dict[str, Schema]:
    """File name -> CRD manifest."""
    provider = {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"}
    return {
        "podnetworks.yaml": crd(
            group=names.GROUP, kind=names.POD_NETWORK_KIND, plural=names.POD_NETWORK_PLURAL,
            scope="Cluster", short=["pn"], spec=POD_NETWORK_SPEC, status=CONDITIONS_STATUS,
            columns=[*READY_COLUMNS, provider],
            description="PodNetwork represents a logical network in the Kubernetes cluster (KEP-3698)."),
        "podnetworkattachments.yaml": crd(
            group=names.GROUP, kind=names.POD_NETWORK_ATTACHMENT_KIND,
            plural=names.POD_NETWORK_ATTACHMENT_PLURAL, scope="Namespaced", short=["pna"],
            spec=ATTACHMENT_SPEC, status=CONDITIONS_STATUS,
            columns=[*READY_COLUMNS,
                     {"name": "PodNetwork", "type": "string", "jsonPath": ".spec.podNetworkName"}],
            description="PodNetworkAttachment provides optional pod-level configuration of a PodNetwork."),
        "networkparams.yaml": crd(
            group=names.PARAMS_GROUP, kind=names.PARAMS_KIND, plural=names.PARAMS_PLURAL,
            scope="Cluster", short=["nparams"], spec=NETWORK_PARAMS_SPEC, status=NETWORK_PARAMS_STATUS,
            columns=[{"name": "Topology", "type": "string", "jsonPath": ".spec.topology"},
                     {"name": "NetworkId", "type": "integer", "jsonPath": ".status.networkId"}],
            description="multinet's provider parameters of a PodNetwork."),
        "ipallocations.yaml": crd(
            group=names.PARAMS_GROUP, kind=names.IP_ALLOCATION_KIND, plural=names.IP_ALLOCATION_PLURAL,
            scope="Cluster", short=["ipalloc"], spec=IP_ALLOCATION_SPEC, status=None,
            columns=[{"name": "Address", "type": "string", "jsonPath": ".spec.address"},
                     {"name": "Pod", "type": "string", "jsonPath": ".spec.podName"}],
            description="One address of a PodNetwork held by one pod; the name makes it unique."),
        "networkidclaims.yaml": crd(
            group=names.PARAMS_GROUP, kind=names.NETWORK_ID_CLAIM_KIND, plural=names.NETWORK_ID_CLAIM_PLURAL,
            scope="Cluster", short=["vni"], spec=NETWORK_ID_CLAIM_SPEC, status=None,
            columns=[{"name": "Params", "type": "string", "jsonPath": ".spec.networkParams"},
                     {"name": "PodNetwork", "type": "string", "jsonPath": ".spec.podNetwork"}],
            description="One network id (VNI) held by one NetworkParams or PodNetwork; the name makes it unique."),
    }


class _NoAliases(yaml.SafeDumper):
    """Shared sub-schemas are written out in full: no YAML anchors in manifests."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(manifest: Schema) -> str:
    header = "# Generated by `python -m podnetwork.crds --write`; do not edit.\n"
    body: str = yaml.dump(manifest, Dumper=_NoAliases, sort_keys=False, width=100)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the multinet CRD manifests.")
    parser.add_argument("--write", action="store_true", help=f"write them under {CRD_DIR.name}/")
    args = parser.parse_args(argv)
    for filename, manifest in all_crds().items():
        if args.write:
            CRD_DIR.mkdir(exist_ok=True)
            (CRD_DIR / filename).write_text(render(manifest))
        else:
            sys.stdout.write(render(manifest) + "---\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
