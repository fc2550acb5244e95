"""A set of networks, namespaces and probe pods shared by a module's tests.

Data-plane tests build one topology per module (pods take a while to start)
and tear it down at the end: pods first, then networks, then namespaces.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from suite.binding import Binding
from suite.fixtures import Namespaces, make_networks, make_probes
from suite.networks import Networks
from suite.options import RunOptions
from suite.pods import NetRequest
from suite.probes import ProbePod, ProbePods

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class Topology:
    networks: Networks
    probes: ProbePods
    namespaces: Namespaces
    nodes: list[str]
    pods: dict[str, ProbePod] = field(default_factory=dict)
    nets: dict[str, str] = field(default_factory=dict)  # key ("A") -> PodNetwork name

    def namespace(self, prefix: str, labels: dict[str, str] | None = None) -> str:
        return self.namespaces.create(prefix, labels)

    def network(self, key: str, kind: str = "distinct", index: int = 0) -> str:
        name: str = self.networks.create(kind=kind, index=index)["metadata"]["name"]
        self.networks.ready(name)
        self.nets[key] = name
        return name

    def pod(self, label: str, namespace: str, node: int, networks: list[NetRequest],
            labels: dict[str, str] | None = None, name: str | None = None,
            customize: Callable[[dict[str, Any]], None] | None = None) -> ProbePod:
        """A probe pod (named `label` unless `name`) on the node'th node (round-robin over the nodes)."""
        made = self.probes.create(namespace, name or label, self.nodes[node % len(self.nodes)], networks, labels,
                                  customize)
        self.pods[label] = made
        return made

    def ready(self, preflight: bool = True) -> None:
        """Wait for every pod; skip the module's tests (with what was seen) if they never answer."""
        if preflight:
            self.probes.ready(list(self.pods.values()))
        else:
            self.probes.started(list(self.pods.values()))

    def addr(self, label: str, network: str, version: int = 4) -> IP:
        return self.probes.address(self.pods[label], network, version)

    def on(self, network: str) -> list[str]:
        """Labels of the pods attached to `network`."""
        return [label for label, p in self.pods.items() if any(n.network == network for n in p.networks)]


@contextmanager
def topology(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
             options: RunOptions, params_namespace: Callable[[], str], nodes: list[str]) -> Iterator[Topology]:
    core = client.CoreV1Api(api)
    made = Topology(make_networks(client.CustomObjectsApi(api), binding, options, params_namespace),
                    make_probes(api, new_api, binding, options), Namespaces(core, options), nodes)
    try:
        yield made
    finally:
        if options.cleanup:
            for pod in list(made.probes.made):
                made.probes.delete(pod)
        made.networks.cleanup()
        made.namespaces.cleanup()
