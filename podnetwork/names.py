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

# The network id (VNI) the controller gave a PodNetwork without parameters (an
# address-less network): the provider's own annotation, since the KEP's status
# holds conditions only. The NetworkIdClaim it names is what holds the id.
NETWORK_ID_ANNOTATION: Final = f"{PARAMS_GROUP}/network-id"

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
# A label value: no "/" allowed, so in the style of "endpointslice-controller.k8s.io".
ENDPOINTSLICE_MANAGED_BY: Final = "controller.multinet.io"
ENDPOINTSLICE_NETWORK_LABEL: Final = "multinet.io/pod-network"

# Names on nodes: network namespaces, links and nftables tables that multinet
# creates start with this, so cleanup removes exactly its own.
NODE_PREFIX: Final = "mn-"

# Kinds, plurals and short names of the KEP objects (used by the CRDs and clients).
POD_NETWORK_KIND: Final = "PodNetwork"
POD_NETWORK_ATTACHMENT_KIND: Final = "PodNetworkAttachment"

# Condition types and reasons (KEP-3698 "Status Conditions").
CONDITION_READY: Final = "Ready"
CONDITION_PARAMS_READY: Final = "ParamsReady"
REASON_PARAMS_NOT_READY: Final = "ParamsNotReady"
REASON_ADMIN_DISABLED: Final = "AdministrativelyDisabled"
REASON_POD_NETWORK_NOT_READY: Final = "PodNetworkNotReady"

# Cluster-wide IPAM: one cluster-scoped object per allocated address, named by
# network and address, so the apiserver refuses a second claim of the same address.
IP_ALLOCATION_KIND: Final = "IPAllocation"
IP_ALLOCATION_PLURAL: Final = "ipallocations"
# One cluster-scoped object per allocated network id (VNI), owned by its NetworkParams
# (or by a PodNetwork without parameters: an address-less network).
NETWORK_ID_CLAIM_KIND: Final = "NetworkIdClaim"
NETWORK_ID_CLAIM_PLURAL: Final = "networkidclaims"
# Labels on IPAllocation objects, for listing a pod's or a network's allocations.
ALLOCATION_POD_UID_LABEL: Final = "multinet.io/pod-uid"
ALLOCATION_NETWORK_LABEL: Final = ENDPOINTSLICE_NETWORK_LABEL
