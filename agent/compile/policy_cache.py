"""Policy entries per (network, pod of this node), recompiled only when what they read changed.

A pod's entries on a network read: its own view there, the policies of its
namespace on that network (a "scope"), the network's id, and, only when one
of those policies names pods or namespaces as peers (`policy.reads_peers`),
every pod's view on the network and the namespaces' labels. Each of these
carries a generation number bumped when it changes; a pod is recompiled when
the generations it read differ from the ones it was compiled with. Pods of
this node are few, so checking them all after a change is cheap; the
expensive part, matching peers among all pods, runs only for the pods whose
inputs moved.

Group ids come from one counted `Groups` for the node, as in the from-scratch
compile; only under a hash collision of two rule sets (31 bits) may the two
differ in which set holds the salted id.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from agent.compile.assembly import Assembly
from agent.compile.facts import PodFacts
from agent.compile.objects import Obj, labels, meta, network_of
from agent.compile.policy import Groups, PodView, pod_policy, pod_view, reads_peers

PodKey = tuple[str, str]
Scope = tuple[str, str]  # (network, namespace)


class PolicyCache:
    def __init__(self, node_name: str, assembly: Assembly) -> None:
        self.node_name, self.assembly = node_name, assembly
        self.groups = Groups()
        self._gen = itertools.count(1)
        self._policy_scope: dict[PodKey, Scope] = {}
        self._scopes: dict[Scope, dict[PodKey, Obj]] = {}
        self._scope_gen: dict[Scope, int] = {}
        self._scope_reads_peers: dict[Scope, bool] = {}
        self._views: dict[str, dict[PodKey, PodView]] = {}  # network -> every pod's view
        self._view_gen: dict[str, int] = {}
        self._view_lists: dict[str, tuple[int, list[PodView]]] = {}
        self._local: dict[str, dict[PodKey, PodView]] = {}  # network -> this node's pods' views
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self._ns_gen = 0
        self._compiled: dict[tuple[str, PodKey], tuple[object, list[tuple[int, int]]]] = {}
        self.dirty = False

    # --- inputs --------------------------------------------------------------------

    def pod(self, key: PodKey, old: PodFacts | None, new: PodFacts | None) -> None:
        for network in set(old.addresses if old else ()) | set(new.addresses if new else ()):
            before = pod_view(old, network) if old else None
            after = pod_view(new, network) if new else None
            if before == after:
                continue
            self.dirty = True
            self._view_gen[network] = next(self._gen)
            _put(self._views, network, key, after)
            _put(self._local, network, key, after if after is not None and after.node == self.node_name else None)

    def namespace(self, name: str, obj: Obj | None) -> None:
        have = self._ns_labels.get(name)
        want = dict(labels(obj)) if obj is not None else None
        if have == want:
            return
        if want is None:
            del self._ns_labels[name]
        else:
            self._ns_labels[name] = want
        self._ns_gen = next(self._gen)
        self.dirty = True

    def policy(self, key: PodKey, obj: Obj | None) -> None:
        self.dirty = True
        old, new = self._policy_scope.pop(key, None), _scope_of(obj)
        if old is not None:
            self._scopes[old].pop(key, None)
        if new is not None and obj is not None:
            self._scopes.setdefault(new, {})[key] = obj
            self._policy_scope[key] = new
        for scope in (old, new):
            if scope is None:
                continue
            if self._scopes.get(scope):
                self._scope_gen[scope] = next(self._gen)
                self._scope_reads_peers[scope] = any(reads_peers(p) for p in self._scopes[scope].values())
            else:
                self._scopes.pop(scope, None)
                self._scope_gen.pop(scope, None)
                self._scope_reads_peers.pop(scope, None)

    # --- output --------------------------------------------------------------------

    def refresh(self, routed: Mapping[str, int]) -> None:
        """Recompile the pods whose inputs changed; `routed`: the networks policy applies on."""
        self.dirty = False
        wanted = {(network, key) for network, pods in self._local.items() if network in routed
                  for key, view in pods.items() if (network, view.namespace) in self._scopes}
        for network, key in wanted | set(self._compiled):
            self._one(network, key, routed if (network, key) in wanted else {})

    def _one(self, network: str, key: PodKey, routed: Mapping[str, int]) -> None:
        owner = ("policy", network, *key)
        held = self._compiled.get((network, key))
        view = self._local.get(network, {}).get(key)
        if view is None or network not in routed:
            if held is not None:
                self._release(held[1])
                del self._compiled[(network, key)]
                self.assembly.drop(owner)
            return
        signature = self._signature(network, view, routed[network])
        if held is not None and held[0] == signature:
            return
        entries, taken = pod_policy(view, self._scopes[(network, view.namespace)].values(), self._peers(network),
                                    self._ns_labels, routed[network], self.groups)
        if held is not None:
            self._release(held[1])  # after taking the new ids: an unchanged set keeps its id
        self._compiled[(network, key)] = (signature, taken)
        self.assembly.set(owner, entries)

    def _signature(self, network: str, view: PodView, network_id: int) -> object:
        scope = (network, view.namespace)
        peers = (self._view_gen.get(network), self._ns_gen) if self._scope_reads_peers.get(scope) else None
        return view, network_id, self._scope_gen[scope], peers

    def _peers(self, network: str) -> list[PodView]:
        gen = self._view_gen.get(network, 0)
        cached = self._view_lists.get(network)
        if cached is None or cached[0] != gen:
            cached = self._view_lists[network] = (gen, list(self._views.get(network, {}).values()))
        return cached[1]

    def _release(self, taken: list[tuple[int, int]]) -> None:
        for direction, gid in taken:
            self.groups.release(direction, gid)


def _scope_of(policy: Obj | None) -> Scope | None:
    network = network_of(policy) if policy is not None else None
    return None if policy is None or network is None else (network, str(meta(policy).get("namespace") or ""))


def _put(index: dict[str, dict[PodKey, PodView]], network: str, key: PodKey, view: PodView | None) -> None:
    if view is None:
        index.get(network, {}).pop(key, None)
        if network in index and not index[network]:
            del index[network]
    else:
        index.setdefault(network, {})[key] = view
