"""Reconciler of a Service on its secondary network: its virtual IPs on that
network (one per family its ipFamilyPolicy asks for and the network has a
service range for), and its EndpointSlices holding the selected pods'
addresses there. Refused, with an Event, on an address-less network and where
RequireDualStack cannot be met."""

from __future__ import annotations

from controller.allocator import Allocator
from controller.endpoints import HASH_ANNOTATION, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_slices
from controller.index import Index
from controller.networks import address_less, params_verdict
from controller.notices import Notices
from kube import Kube, NotFound, Obj
from kube.resources import ENDPOINT_SLICES, PODS, SERVICES
from podnetwork import names
from podnetwork.ipam import Pool
from podnetwork.params import FamilyParams, IPNetwork, NetworkParams
from podnetwork.vips import first_per_family, parse_service_vips


REASON_ADDRESS_LESS = "AddressLessNetwork"
REASON_FAMILIES = "IPFamilyPolicyUnmet"
_FAMILY = {"IPv4": 4, "IPv6": 6}


class ServiceReconciler:
    def __init__(self, kube: Kube, index: Index, allocator: Allocator, notices: Notices) -> None:
        self.kube = kube
        self.index = index
        self.allocator = allocator
        self.notices = notices

    def _ensure_vips(self, svc: Obj, network: str) -> bool:
        """Give the Service a VIP per family from its network's service ranges;
        False when its ipFamilyPolicy cannot be met on the network (an Event says why).

        VIPs it has (the controller's, or one the user wrote) are kept, in order, so
        the primary never changes; a family its policy asks for and it lacks is
        added, as the apiserver adds a secondary clusterIP when a Service moves
        from SingleStack to dual stack (a move back leaves the second VIP unused:
        the agent serves the first only). Each address is claimed like a pod's
        (one IPAllocation, owned by the Service's uid), so it is never handed out
        twice; the controller's sweep frees it when the Service is gone.
        """
        text = (svc["metadata"].get("annotations") or {}).get(names.SERVICE_VIP_ANNOTATION)
        given = parse_service_vips(text) if text is not None else []
        obj = self.index.get("network", network)
        _, binding = params_verdict(self.index, ((obj or {}).get("spec") or {}).get("parametersRefs"))
        ranges = _service_ranges(binding.params) if binding and binding.params else {}
        spec = svc.get("spec") or {}
        families, refusal = vip_families(spec.get("ipFamilyPolicy"), spec.get("ipFamilies"), tuple(ranges))
        if text is not None:
            have = set(first_per_family(given))
            families = [v for v in families if v not in have] if not refusal else []
            if not families:
                return True
        elif refusal:
            self.notices.tell(svc, "Service", REASON_FAMILIES, f"PodNetwork {network!r}: {refusal}")
            return False
        if not families:
            return True  # no service range on this network: the datapath uses spec.clusterIP
        vips = [str(self.allocator.allocate(svc, network, Pool.from_family(
            FamilyParams(subnet=ranges[v], gateway=None, excludes=())))) for v in families]
        self.kube.patch(SERVICES, svc["metadata"]["name"], {"metadata": {"annotations": {
            names.SERVICE_VIP_ANNOTATION: ",".join(given + vips)}}}, svc["metadata"]["namespace"])
        return True

    def reconcile(self, namespace: str, name: str) -> None:
        svc = self.kube.find(SERVICES, name, namespace)
        network = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(names.POD_NETWORK_ANNOTATION)
        desired = []
        if svc is not None and network and address_less(self.index, network):
            # Refused: nothing to balance to (its pods have no addresses), and no VIP to give.
            self.notices.tell(svc, "Service", REASON_ADDRESS_LESS,
                              f"PodNetwork {network!r} has no addresses (no ipv4 or ipv6): a Service cannot "
                              "apply on it; no virtual IP and no endpoints are made")
        elif svc is not None and network and self._ensure_vips(svc, network):
            selector = (svc.get("spec") or {}).get("selector") or {}
            pods = [] if not selector else self.kube.list(
                PODS, namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items()))
            desired = desired_slices(svc, network, pods)
        existing: dict[str, Obj] = {s["metadata"]["name"]: s for s in self.kube.list(
            ENDPOINT_SLICES, namespace, label_selector=f"{MANAGED_BY_LABEL}={names.ENDPOINTSLICE_MANAGED_BY},"
                                                       f"{SERVICE_NAME_LABEL}={name}")}
        for body in desired:
            current = existing.pop(body["metadata"]["name"], None)
            if current is None:
                self.kube.create(ENDPOINT_SLICES, body, namespace)
            elif _digest(current) != body["metadata"]["annotations"][HASH_ANNOTATION]:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.kube.replace(ENDPOINT_SLICES, body["metadata"]["name"], body, namespace)
        for stale in existing:
            try:
                self.kube.delete(ENDPOINT_SLICES, stale, namespace)
            except NotFound:
                pass  # gone already


def _service_ranges(params: NetworkParams) -> dict[int, IPNetwork]:
    """The first service range of each family the network has addresses in (4, 6)."""
    have = {f.subnet.version for f in params.families()}
    out: dict[int, IPNetwork] = {}
    for cidr in params.service_cidrs:
        if cidr.version in have:
            out.setdefault(cidr.version, cidr)
    return dict(sorted(out.items()))


def vip_families(policy: str | None, ip_families: list[str] | None,
                 available: tuple[int, ...]) -> tuple[list[int], str | None]:
    """Which families (4, 6) get a VIP, in order, or why the policy cannot be met.

    `ipFamilies` is defaulted by the apiserver from the cluster's own service
    ranges, not the secondary network's, so a family the network has no range
    for is passed over rather than refused; its order is kept (core/v1 Service:
    the first family is the primary one). RequireDualStack needs both; without
    any service range the network's Services use spec.clusterIPs, as before.
    """
    wanted = [_FAMILY[f] for f in ip_families or () if f in _FAMILY and _FAMILY[f] in available]
    order = wanted + [v for v in available if v not in wanted]
    policy = policy or "SingleStack"
    if policy == "RequireDualStack" and len(available) == 1:
        return [], (f"ipFamilyPolicy RequireDualStack needs an IPv4 and an IPv6 service range; the network has "
                    f"IPv{available[0]} only: no virtual IP and no endpoints are made")
    return (order[:1] if policy == "SingleStack" else order), None


def _digest(endpoint_slice: Obj) -> str | None:
    return (endpoint_slice["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
