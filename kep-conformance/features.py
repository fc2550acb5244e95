"""Features and profiles of the KEP-3698 conformance suite.

As in Gateway API conformance: every test belongs to one feature; Core
features must pass on every implementation, Extended features run only where
the implementation declares them supported (otherwise they are skipped and the
report says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Support(str, Enum):
    CORE = "Core"
    EXTENDED = "Extended"


@dataclass(frozen=True)
class Feature:
    name: str
    support: Support
    summary: str


FEATURES = {
    f.name: f
    for f in (
        Feature("PodNetworkAPI", Support.CORE,
                "PodNetwork and PodNetworkAttachment objects with the KEP's fields, defaults and immutability"),
        Feature("PodNetworkStatus", Support.CORE,
                "Ready and ParamsReady conditions with the KEP's reasons; the `default` PodNetwork"),
        Feature("PodNetworkInUse", Support.CORE,
                "a PodNetwork or PodNetworkAttachment in use cannot be deleted until its last user goes"),
        Feature("PodNetworksStaticValidation", Support.CORE,
                "a pod's networks list is refused at admission when it breaks the KEP's static validations"),
        Feature("PodNetworksActiveValidation", Support.EXTENDED,
                "a pod waits (scheduling gate) until every network it references exists and is Ready"),
        Feature("PodNetworkAccessControl", Support.EXTENDED,
                "only users allowed to `use` a PodNetwork may create pods that reference it (Phase II)"),
        Feature("PodNetworkAttachmentStatus", Support.EXTENDED,
                "running pods report each attachment's interface and addresses (needs nodes that run pods)"),
    )
}

# The pod annotation that carries the KEP's Pod `networks` list while the field
# is not part of the core API.
NETWORKS_ANNOTATION = "multinetwork.networking.x-k8s.io/networks"
NETWORK_STATUS_ANNOTATION = "multinetwork.networking.x-k8s.io/network-status"
GROUP = "multinetwork.networking.x-k8s.io"
VERSION = "v1alpha1"
