"""Conformance profiles and their features, in the manner of Gateway API.

Every test names the features it needs (`@pytest.mark.feature(...)`); the
first one places it in a profile. A test is Extended when any of its features
is Extended, and runs only where the implementation supports every Extended
feature it needs. Core features must pass everywhere. MULTINETWORK-POLICY and
MULTINETWORK-SERVICES are provisional: KEP-3698 requirement 21 makes Service
and NetworkPolicy on secondary networks optional, and their tests may still
change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class Support(str, Enum):
    CORE = "Core"
    EXTENDED = "Extended"


@dataclass(frozen=True)
class Feature:
    name: str
    profile: str
    support: Support
    summary: str


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    provisional: bool = False


API: Final = "MULTINETWORK-API"
ATTACHMENT: Final = "MULTINETWORK-ATTACHMENT"
ACCESS: Final = "MULTINETWORK-ACCESS"
POLICY: Final = "MULTINETWORK-POLICY"
SERVICES: Final = "MULTINETWORK-SERVICES"

PROFILES: Final = {p.name: p for p in (
    Profile(API, "the PodNetwork and PodNetworkAttachment objects, their status, in-use protection, "
                 "the default network, and the pod's networks list at admission and scheduling"),
    Profile(ATTACHMENT, "interfaces inside running pods and traffic on secondary networks: addresses, "
                        "reachability across nodes without SNAT, isolation, overlapping subnets"),
    Profile(ACCESS, "who may attach a pod to a network (the `use` verb) and what a pod learns of its networks"),
    Profile(POLICY, "NetworkPolicy enforced per secondary network", provisional=True),
    Profile(SERVICES, "Services and EndpointSlices per secondary network", provisional=True),
)}

C, E = Support.CORE, Support.EXTENDED

FEATURES: Final = {f.name: f for f in (
    Feature("PodNetworkAPI", API, C, "the objects are served with the KEP's fields, defaults and immutability"),
    Feature("PodNetworkStatus", API, C,
            "Ready and ParamsReady with the KEP's reasons, re-evaluated with observedGeneration after changes"),
    Feature("PodNetworkInUse", API, C,
            "a PodNetwork in use by a non-terminal pod is not deleted until its last user goes"),
    Feature("PodNetworksStaticValidation", API, C,
            "the pod's networks list: the KEP's static validations, auto-population, hostNetwork pods unchanged"),
    Feature("DefaultPodNetwork", API, C,
            "`default` exists, is Ready, needs no grant, and comes back after deletion (disruptive)"),
    Feature("PodNetworkAttachment", API, E,
            "the PodNetworkAttachment object: immutability, Ready follows its network, in-use protection"),
    Feature("PodNetworksActiveValidation", API, E,
            "a pod stays unscheduled while a network or attachment it references is missing or not Ready"),

    Feature("AttachmentInterfaces", ATTACHMENT, C,
            "the named interface exists inside the pod, is up and holds exactly the reported addresses"),
    Feature("AttachmentAddressing", ATTACHMENT, C, "addresses are unique across pods, also after churn"),
    Feature("AttachmentReachability", ATTACHMENT, C,
            "every pod of a network reaches every other across nodes and is seen by its own address"),
    Feature("NetworkIsolation", ATTACHMENT, C, "pods of different networks do not reach each other"),
    Feature("OverlappingSubnets", ATTACHMENT, E,
            "two networks with the same subnet: each pod reaches only its own network's owner of an address"),
    Feature("DefaultGatewaySelection", ATTACHMENT, E, "isDefaultGW4 moves the pod's default route"),
    Feature("DualStack", ATTACHMENT, E, "IPv4 and IPv6 on one secondary network, both reachable"),

    Feature("PodNetworkAccessControl", ACCESS, C, "referencing a PodNetwork needs the `use` verb on it"),
    Feature("AccessThroughAttachment", ACCESS, E, "`use` is checked for networks reached through an attachment"),
    Feature("NetworkSelfDiscovery", ACCESS, E,
            "a pod reads its own networks' names and addresses through the downward API (requirement 17)"),

    Feature("NetworkPolicyIngress", POLICY, C,
            "ingress rules on a secondary network: selectors, peers, ports, updates and deletion"),
    Feature("NetworkPolicyPerNetwork", POLICY, C, "a policy on one network leaves the pods' other networks alone"),
    Feature("NetworkPolicyNamedPorts", POLICY, E, "named container ports in policy rules"),
    Feature("NetworkPolicyEgress", POLICY, E, "egress rules on a secondary network"),
    Feature("NetworkPolicyIPBlock", POLICY, E, "ipBlock peers with except on a secondary network"),
    Feature("NetworkPolicyOverlappingNetworks", POLICY, E,
            "a policy on one of two overlapping networks holds against the same connection opened on the other"),
    Feature("NetworkPolicyUnbound", POLICY, E,
            "a policy without a network binding applies where the implementation declares"),

    Feature("ServiceEndpointSlices", SERVICES, C,
            "per-network EndpointSlices hold exactly the ready backends' addresses on that network"),
    Feature("ServiceLoadBalancing", SERVICES, C,
            "a Service address on a network spreads over its backends and follows them as they come and go"),
    Feature("ServiceNetworkIsolation", SERVICES, C, "a network's Service address is not reachable from another"),
    Feature("ServiceNamedTargetPort", SERVICES, E, "a named targetPort resolves per backend"),
)}


def profile_of(features: tuple[str, ...]) -> str:
    return FEATURES[features[0]].profile


def is_extended(features: tuple[str, ...]) -> bool:
    return any(FEATURES[f].support is Support.EXTENDED for f in features)


def extended_features(profile: str) -> list[str]:
    return sorted(n for n, f in FEATURES.items() if f.profile == profile and f.support is Support.EXTENDED)


def parse_names(text: str, known: dict[str, object], flag: str) -> set[str]:
    """Comma-separated names checked against `known`; unknown ones are refused, naming the flag."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(known)
    if unknown:
        raise ValueError(f"{flag}: unknown {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return names
