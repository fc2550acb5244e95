"""The upstream NetworkPolicy e2e model, on secondary networks.

Namespaces x and y, pods a, b, c in each (labels pod=a..., namespaces
kep-ns=x|y), spread over two nodes, every pod on two secondary networks P
and Q. Policies carry the binding's network annotation (P unless a test says
otherwise); each table probes from every pod to every pod's address on the
network under test, so the cells a policy leaves alone are the positive
controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from suite.binding import Binding
from suite.connectivity import TableLog, Target, reach
from suite.kube import Obj, body, ignore_missing
from suite.options import RunOptions
from suite.pods import HTTP_PORT, NetRequest
from suite.topology import Topology, topology
from suite.truth import TruthTable
from suite.verdicts import Rules

NAMESPACES = ("x", "y")
PODS = ("a", "b", "c")
IFACES = {"P": "pol0", "Q": "pol1"}
Expect = Callable[[str, str], bool]  # (client "x/a", target "y/b") -> connects


@dataclass
class Model:
    topo: Topology
    binding: Binding
    networking: client.NetworkingV1Api
    rules: Rules
    ns: dict[str, str] = field(default_factory=dict)  # "x" -> the namespace's real name
    policies: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [f"{n}/{p}" for n in NAMESPACES for p in PODS]

    def policy(self, name: str, ns: str, spec: dict[str, Any], network: str | None = "P") -> None:
        """Create a NetworkPolicy in namespace key `ns`; network None leaves it unbound."""
        meta: dict[str, Any] = {"name": name}
        if network is not None:
            meta["annotations"] = {str(self.binding.policy_annotation): self.topo.nets[network]}
        self.networking.create_namespaced_network_policy(self.ns[ns], body({"metadata": meta, "spec": spec}))
        self.policies.append((self.ns[ns], name))

    def replace(self, name: str, ns: str, spec: dict[str, Any]) -> None:
        current: Obj = self.networking.read_namespaced_network_policy(name, self.ns[ns])
        current.spec = spec  # the model validates the mapping on assignment
        self.networking.replace_namespaced_network_policy(name, self.ns[ns], current)

    def delete(self, name: str, ns: str) -> None:
        self.networking.delete_namespaced_network_policy(name, self.ns[ns])
        self.policies.remove((self.ns[ns], name))

    def clear(self) -> None:
        for namespace, name in self.policies:
            ignore_missing(lambda: self.networking.delete_namespaced_network_policy(name, namespace))
        self.policies.clear()

    def reset(self) -> None:
        """Delete every policy and wait until all pods reach each other again on P and Q.

        Without this, a negative cell of the next test could be "confirmed"
        by a policy that is still being removed.
        """
        self.clear()
        for network in IFACES:
            table = self.table("baseline after clearing policies", lambda c, t: True, network)
            assert not table.mismatches(), "deleting the policies did not restore connectivity:\n" + table.render()

    def table(self, title: str, expect: Expect, network: str = "P", port: int = HTTP_PORT) -> TruthTable:
        net = self.topo.nets[network]
        clients = {label: self.topo.pods[label] for label in self.labels}
        targets = {label: Target(self.topo.addr(label, net), port, answer=self.topo.pods[label].hostname)
                   for label in self.labels}
        cells = {(c, t): expect(c, t) for c in self.labels for t in self.labels}
        return reach(self.topo.probes, f"{title} [network {network}, port {port}]", clients, targets, cells,
                     self.rules)

    def check(self, tables: TableLog, test: str, title: str, expect: Expect, network: str = "P",
              port: int = HTTP_PORT) -> None:
        tables.check(test, self.table(title, expect, network, port))


@contextmanager
def model(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
          options: RunOptions, params_namespace: Callable[[], str], nodes: list[str]) -> Iterator[Model]:
    with topology(api, new_api, binding, options, params_namespace, nodes) as t:
        for index, key in enumerate(IFACES):
            t.network(key, index=index)
        made = Model(t, binding, client.NetworkingV1Api(api), Rules(timeout=options.converge_timeout))
        for n in NAMESPACES:
            made.ns[n] = t.namespaces.create(f"kep-{n}", {"kep-ns": n})
        spot = 0
        for n in NAMESPACES:
            for p in PODS:
                nets = [NetRequest(t.nets[k], interface=iface) for k, iface in IFACES.items()]
                # Pod names differ across namespaces: netexec answers with its hostname.
                t.pod(f"{n}/{p}", made.ns[n], spot, nets, labels={"pod": p}, name=f"{n}{p}")
                spot += 1
        t.ready()
        try:
            yield made
        finally:
            made.clear()


def peer(ns: str | None = None, pod: str | None = None) -> dict[str, Any]:
    """A `from`/`to` peer selecting namespace key and/or pod label (both: the AND form)."""
    out: dict[str, Any] = {}
    if ns is not None:
        out["namespaceSelector"] = {"matchLabels": {"kep-ns": ns}}
    if pod is not None:
        out["podSelector"] = {"matchLabels": {"pod": pod}}
    return out


def selecting(pod: str | None) -> dict[str, Any]:
    return {"matchLabels": {"pod": pod}} if pod else {}
