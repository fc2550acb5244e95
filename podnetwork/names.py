"""Names shared by every part: API groups, annotation keys, gates, labels.

One source of truth: the controller, the node agent, the datapath binding and
the conformance suite import these rather than spelling the strings again.
"""

from __future__ import annotations

from typing import Final

# KEP-3698 objects.
GROUP: Final = "multinetwork.networking.x-k8s.io"
VERSION: Final = "v1alpha1"
POD_NETWORK_PLURAL: Final = "podnetworks"
POD_NETWORK_ATTACHMENT_PLURAL: Final = "podnetworkattachments"
DEFAULT_NETWORK: Final = "default"

# The project's own provider-parameters kind (cluster-scoped), which a
# PodNetwork's spec.parametersRefs points at.
PARAMS_GROUP: Final = "multinet.io"
PARAMS_VERSION: Final = "v1alpha1"
PARAMS_KIND: Final = "NetworkParams"
PARAMS_PLURAL: Final = "networkparams"
PROVIDER: Final = "multinet.io"

# Pod annotations.
# The KEP's Network list (user input): JSON list of
# {podNetworkName | podNetworkAttachmentName, interfaceName, isDefaultGW4, isDefaultGW6}.
NETWORKS_ANNOTATION: Final = f"{GROUP}/networks"
# Written by the controller before the scheduling gate goes: JSON list of
# {podNetworkName, podNetworkAttachmentName?, interfaceName, networkId, ips: ["cidr", ...]}
# one entry per non-default network of the pod, interface names resolved.
ALLOCATIONS_ANNOTATION: Final = f"{GROUP}/allocations"
# Written by the node agent once interfaces exist: JSON list of
# {podNetworkName, podNetworkAttachmentName?, interfaceName, ips, mac, gateways, default}.
NETWORK_STATUS_ANNOTATION: Final = f"{GROUP}/network-status"
# The Network Plumbing WG format, for tools that read it.
NPWG_NETWORK_STATUS_ANNOTATION: Final = "k8s.v1.cni.cncf.io/network-status"

# Services and NetworkPolicies that apply on a secondary network carry this.
POD_NETWORK_ANNOTATION: Final = f"{GROUP}/pod-network"
# A Service's virtual IP on its secondary network (from the network's service
# range); without it the datapath uses spec.clusterIP.
SERVICE_VIP_ANNOTATION: Final = f"{GROUP}/service-vip"

# Pod gates (KEP "active validations" and readiness).
SCHEDULING_GATE: Final = f"{GROUP}/networks-ready"
READINESS_CONDITION: Final = f"{GROUP}/networks-attached"

# Finalizer on PodNetwork / PodNetworkAttachment while in use.
FINALIZER: Final = f"{GROUP}/in-use"

# EndpointSlices holding pods' addresses on a secondary network.
ENDPOINTSLICE_MANAGED_BY: Final = "multinet.io/controller"
ENDPOINTSLICE_NETWORK_LABEL: Final = "multinet.io/pod-network"

# Names on nodes: network namespaces, links and nftables tables that multinet
# creates start with this, so cleanup removes exactly its own.
NODE_PREFIX: Final = "mn-"
