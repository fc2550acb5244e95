"""`compile_node`, kept incrementally: a change recompiles only what it touches.

`NodeCompiler.compile` takes the same listings as `compile_node` (the agent's
caches, whole) and returns the same entries (`apply` takes only what changed,
as the caches' events tell it), but keeps what it compiled per object: a pod's remote routes, a Service's entries, a pod's policy (see
agent.compile.policy_cache), and the floods. Objects that changed are found
by identity (agent.compile.tracker); a changed object marks dirty what reads
it (a pod: its routes, the floods, policy; an EndpointSlice: its Service; a
network's id: the pods and Services on it; a node's address: the routes to
its pods); only those are recompiled, and the assembled map
(agent.compile.assembly) is updated in place. The result names the keys that
changed, so the datapath diffs only those. Pure: no I/O, one caller at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from agent.compile.assembly import Assembly
from agent.compile.facts import PodFacts, pod_facts
from agent.compile.objects import Obj
from agent.compile.policy_cache import PolicyCache
from agent.compile.routes import flood_entries, layer2_presence, node_vtep, pod_routes
from agent.compile.services import service_entries, service_owner, slice_owner
from agent.compile.tracker import ObjKey, Tracker
from datapath.state import CompiledState, next_version

KINDS = ("pods", "namespaces", "nodes", "services", "slices", "policies")
V = TypeVar("V")
SliceOwner = tuple[str, str, str]  # (namespace, Service, network)


class NodeCompiler:
    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self._reset()

    def _reset(self) -> None:
        self.trackers = {kind: Tracker() for kind in KINDS}
        self._tracking = True
        self.assembly = Assembly()
        self.policy = PolicyCache(self.node_name, self.assembly)
        self.version: int | None = None
        self.facts: dict[ObjKey, PodFacts] = {}
        self._ids: dict[str, dict[ObjKey, int]] = {}  # network -> pod -> the id its allocation names
        self._addressed: dict[str, set[ObjKey]] = {}  # network -> pods with addresses on it
        self._on_node: dict[str, set[ObjKey]] = {}
        self._layer2: dict[str, dict[str, int]] = {}  # address-less network -> node -> pods
        self.networks: dict[str, int] = {}
        self.routed: dict[str, int] = {}  # the networks with addresses: Services and policy apply there
        self.vteps: dict[str, str] = {}
        self._services: dict[ObjKey, Obj] = {}
        self._services_on: dict[str, set[ObjKey]] = {}
        self._slice_owner: dict[ObjKey, SliceOwner] = {}
        self._slices_of: dict[SliceOwner, dict[ObjKey, Obj]] = {}
        self._dirty_routes: set[ObjKey] = set()
        self._dirty_services: set[ObjKey] = set()
        self._dirty_floods = False

    def compile(self, *, pods: Iterable[Obj], namespaces: Iterable[Obj], nodes: Iterable[Obj],
                services: Iterable[Obj], slices: Iterable[Obj], policies: Iterable[Obj]) -> CompiledState:
        """`compile_node(networks=network_ids(pods), ...)`'s entries by key, and the keys changed
        since the last call. The listings are whole; what changed is found by identity."""
        if not self._tracking:
            self._reset()  # fed changes meanwhile: the trackers know nothing of them
        listings = dict(zip(KINDS, (pods, namespaces, nodes, services, slices, policies)))
        return self._guarded(lambda: {kind: self.trackers[kind].changes(listings[kind]) for kind in KINDS})

    def apply(self, changes: Mapping[str, Mapping[ObjKey, Obj | None]]) -> CompiledState:
        """The same, fed the changes alone: kind -> (namespace, name) -> the object now, None
        when deleted (as a cache's events tell them; a change repeated is harmless). Starts
        from the state of the previous call: the first call, and the first after an error,
        wants `compile` of the whole listings (`version` is None then)."""
        if self._tracking:  # the trackers would go stale: let go of the listing they hold
            self.trackers, self._tracking = {kind: Tracker() for kind in KINDS}, False
        return self._guarded(lambda: changes)

    def _guarded(self, changes: Callable[[], Mapping[str, Mapping[ObjKey, Obj | None]]]) -> CompiledState:
        try:
            return self._apply(changes())
        except BaseException:
            self._reset()  # half-applied changes: start over from the next whole listing
            raise

    def _apply(self, changes: Mapping[str, Mapping[ObjKey, Obj | None]]) -> CompiledState:
        def of(kind: str) -> Iterable[tuple[ObjKey, Obj | None]]:
            return (changes.get(kind) or {}).items()

        touched: set[str] = set()
        for key, obj in of("pods"):
            touched |= self._pod(key, pod_facts(obj) if obj is not None else None)
        self._networks(touched)
        for key, obj in of("nodes"):
            self._node(key[1], obj)
        for key, obj in of("namespaces"):
            self.policy.namespace(key[1], obj)
        for key, obj in of("slices"):
            self._slice(key, obj)
        for key, obj in of("services"):
            self._service(key, obj)
        for key, obj in of("policies"):
            self.policy.policy(key, obj)
        self._refresh()
        state = CompiledState(self.assembly.entries, next_version(), self.version, self.assembly.take_changed())
        self.version = state.version
        return state

    # --- pods and networks ---------------------------------------------------------

    def _pod(self, key: ObjKey, new: PodFacts | None) -> set[str]:
        """Index a pod's new facts; returns the networks whose id or routing may have changed."""
        old = self.facts.pop(key, None)
        if new is not None:
            self.facts[key] = new
        if old == new:
            return set()
        self.policy.pod(key, old, new)
        self._dirty_routes.add(key)
        for facts, step in ((old, -1), (new, 1)):
            if facts is None:
                continue
            _member(self._on_node, facts.node, key, step)
            for network in facts.addresses:
                _member(self._addressed, network, key, step)
            for network, net in facts.allocated.items():
                ids = self._ids.setdefault(network, {})
                if step > 0:
                    ids[key] = net
                else:
                    ids.pop(key, None)
            for network, node in layer2_presence(facts):
                count = self._layer2.setdefault(network, {})
                count[node] = count.get(node, 0) + step
                if not count[node]:
                    del count[node]
        if (layer2_presence(old) if old else set()) != (layer2_presence(new) if new else set()):
            self._dirty_floods = True
        return {n for f in (old, new) if f is not None for n in (*f.addresses, *f.allocated)}

    def _networks(self, touched: set[str]) -> None:
        """Each touched network's id (the first pod in key order names it) and whether it is routed."""
        for network in touched:
            ids = self._ids.get(network)
            if not ids:
                self._ids.pop(network, None)
            net = ids[min(ids)] if ids else None
            if self.networks.get(network) != net:
                _set(self.networks, network, net)
                self._dirty_routes |= self._addressed.get(network, set())
                self._dirty_floods = True
            routed = net if self._addressed.get(network) else None
            if self.routed.get(network) != routed:
                _set(self.routed, network, routed)
                self._dirty_services |= self._services_on.get(network, set())
                self.policy.dirty = True

    def _node(self, name: str, obj: Obj | None) -> None:
        vtep = node_vtep(obj) if obj is not None else None
        if self.vteps.get(name) != vtep:
            _set(self.vteps, name, vtep)
            self._dirty_routes |= self._on_node.get(name, set())
            self._dirty_floods = True

    # --- Services --------------------------------------------------------------------

    def _slice(self, key: ObjKey, obj: Obj | None) -> None:
        old = self._slice_owner.pop(key, None)
        if old is not None and obj is not None and self._slices_of[old].get(key) == obj:
            self._slice_owner[key] = old  # a relist's equal copy: keep the new dict, nothing to recompile
            self._slices_of[old][key] = obj
            return
        if old is not None:
            own = self._slices_of[old]
            del own[key]
            if not own:
                del self._slices_of[old]
            self._dirty_services.add(old[:2])
        if obj is not None:
            owner = self._slice_owner[key] = slice_owner(obj)
            self._slices_of.setdefault(owner, {})[key] = obj
            self._dirty_services.add(owner[:2])

    def _service(self, key: ObjKey, obj: Obj | None) -> None:
        old = self._services.pop(key, None)
        if old is not None and old == obj:
            self._services[key] = old
            return
        for svc, step in ((old, -1), (obj, 1)):
            owner = service_owner(svc) if svc is not None else None
            if owner is not None:
                _member(self._services_on, owner[2], key, step)
        if obj is not None:
            self._services[key] = obj
        self._dirty_services.add(key)

    # --- recompiling what is dirty ---------------------------------------------------

    def _refresh(self) -> None:
        for key in self._dirty_routes:
            facts = self.facts.get(key)
            routes = pod_routes(facts, self.node_name, self.vteps, self.networks) if facts is not None else []
            self.assembly.set(("route", *key), routes)
        for key in self._dirty_services:
            svc = self._services.get(key)
            owner = service_owner(svc) if svc is not None else None
            own = self._slices_of.get(owner, {}).values() if owner is not None else ()
            self.assembly.set(("service", *key), service_entries(svc, own, self.routed) if svc is not None else ())
        if self._dirty_floods:
            nodes_of = {network: list(count) for network, count in self._layer2.items()}
            self.assembly.set(("flood",), flood_entries(nodes_of, self.node_name, self.vteps, self.networks))
        if self.policy.dirty:
            self.policy.refresh(self.routed)
        self._dirty_routes, self._dirty_services, self._dirty_floods = set(), set(), False


def _member(index: dict[str, set[ObjKey]], name: str, key: ObjKey, step: int) -> None:
    if step > 0:
        index.setdefault(name, set()).add(key)
    elif name in index:
        index[name].discard(key)
        if not index[name]:
            del index[name]


def _set(index: dict[str, V], name: str, value: V | None) -> None:
    if value is None:
        index.pop(name, None)
    else:
        index[name] = value
