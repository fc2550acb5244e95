"""NetworkPolicies marked for a secondary network: refused, with an Event, where
that network is address-less. Policy matches addresses (peers, ipBlock) and the
IPU bridges an address-less network without conntrack, so nothing of such a
policy could be enforced; the node agents leave it out, and the user is told.
"""

from __future__ import annotations

from controller.index import Index
from controller.networks import address_less
from controller.notices import Notices
from kube import Kube
from kube.resources import NETWORK_POLICIES
from podnetwork import names

REASON_ADDRESS_LESS = "AddressLessNetwork"


class PolicyReconciler:
    def __init__(self, kube: Kube, index: Index, notices: Notices) -> None:
        self.kube = kube
        self.index = index
        self.notices = notices

    def reconcile(self, namespace: str, name: str) -> None:
        policy = self.kube.find(NETWORK_POLICIES, name, namespace)
        if policy is None:
            return
        network = (policy["metadata"].get("annotations") or {}).get(names.POD_NETWORK_ANNOTATION)
        if network and address_less(self.index, network):
            self.notices.tell(policy, "NetworkPolicy", REASON_ADDRESS_LESS,
                              f"PodNetwork {network!r} has no addresses (no ipv4 or ipv6): a NetworkPolicy "
                              "cannot apply on it and is not enforced")
        else:
            self.notices.clear(policy)
