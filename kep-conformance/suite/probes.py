"""Probe pods: agnhost netexec on chosen nodes, attached to chosen networks.

The data-plane tests need pods that really run agnhost. Where they never
become Ready or do not answer as netexec (a cluster whose nodes do not run
containers, an apiserver that cannot reach pods), the tests are skipped with
what was seen, so the profile reads partial, never passed. Once the pods
answer, every later problem is the implementation's and fails the test.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suite import status as status_mod
from suite.binding import Binding
from suite.kube import Obj, body, pod_ready, wait_for
from suite.netinfo import (Interface, NetInfoError, Route, parse_addr, parse_addr_text, parse_routes,
                           parse_routes_text)
from suite.pods import HTTP_PORT, NetRequest, plan
from suite.transport import CommandError, Transport, TransportError
from suite.truth import Observation, Seen

T = TypeVar("T")
DialTarget = ipaddress.IPv4Address | ipaddress.IPv6Address | str


@dataclass(frozen=True)
class ProbePod:
    namespace: str
    name: str
    node: str
    networks: tuple[NetRequest, ...]
    labels: tuple[tuple[str, str], ...] = ()
    # The pod's hostname, which netexec answers with: unique per run, so an
    # answer from a same-named pod of another run or cluster never counts.
    hostname: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ProbePods:
    clients_api: client.ApiClient
    binding: Binding
    transport: Transport
    image: str
    ready_timeout: float
    made: list[ProbePod] = field(default_factory=list)
    # pods/exec (through the kubelet, not the pod's network): for reading a pod
    # whose routes the test itself moved off the default network, which may cut
    # the apiserver's way back from the pod proxy. None: the transport above.
    inside: Transport | None = None

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.clients_api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.clients_api)

    def create(self, namespace: str, name: str, node: str, networks: list[NetRequest],
               labels: dict[str, str] | None = None,
               customize: Callable[[dict[str, Any]], None] | None = None) -> ProbePod:
        hostname = f"{name[:50]}-{uuid.uuid4().hex[:8]}"
        made = plan(self.binding, name, networks or None, labels=labels, node=node, probe_image=self.image,
                    hostname=hostname)
        if customize:
            customize(made.body)
        for claim in made.claims:
            group, version = claim["apiVersion"].split("/")
            self.custom.create_namespaced_custom_object(group, version, namespace, "resourceclaims", claim)
        self.core.create_namespaced_pod(namespace, body(made.body))
        pod = ProbePod(namespace, name, node, tuple(networks), tuple(sorted((labels or {}).items())), hostname)
        self.made.append(pod)
        return pod

    def _state(self, pod: ProbePod) -> str:
        p: Obj = self.core.read_namespaced_pod(pod.name, pod.namespace)
        conds = ", ".join(f"{c.type}={c.status}{' (' + c.reason + ')' if c.reason else ''}"
                          for c in p.status.conditions or [])
        waiting = [f"{s.name}: {s.state.waiting.reason}" for s in p.status.container_statuses or []
                   if s.state and s.state.waiting]
        return f"{pod.ref} on {p.spec.node_name or 'no node'}: phase {p.status.phase}; {conds}; {waiting}"

    def started(self, pods: list[ProbePod]) -> None:
        """Wait until every pod is Ready; skip (with what was seen) if one never is."""
        for pod in pods:
            try:
                wait_for(lambda: pod_ready(self.core.read_namespaced_pod(pod.name, pod.namespace)),
                         self.ready_timeout, f"probe pod {pod.ref} Ready")
            except pytest.fail.Exception:
                pytest.skip(f"probe pod never became Ready within {self.ready_timeout:.0f}s: {self._state(pod)}")

    def ready(self, pods: list[ProbePod]) -> None:
        """Ready, and answering as agnhost netexec through the transport."""
        self.started(pods)
        for pod in pods:
            self.preflight(pod)

    def preflight(self, pod: ProbePod) -> None:
        # /echo returns exactly the message: a server that is not netexec
        # (one that answers every request the same way) cannot pass it.
        nonce = f"kep-{uuid.uuid4().hex[:8]}"
        try:
            answer = self.transport.get(pod.namespace, pod.name, "echo", {"msg": nonce})
        except TransportError as err:
            pytest.skip(f"probe pod {pod.ref} is not reachable through --probe-transport={self.transport.name} "
                        f"({err}); try the other transport")
        if answer.strip() != nonce:
            pytest.skip(f"probe pod {pod.ref} does not answer as agnhost netexec on :{HTTP_PORT} "
                        f"(GET /echo?msg={nonce} returned {answer[:120]!r}); is --probe-image agnhost?")
        # netexec's /hostname is the pod's own (unique) hostname: an answer from
        # another pod means the pod's address leads elsewhere.
        try:
            hostname = self.transport.get(pod.namespace, pod.name, "hostname", {}).strip()
        except TransportError as err:
            pytest.skip(f"probe pod {pod.ref}: GET /hostname failed through the {self.transport.name} transport: {err}")
        if hostname != pod.hostname:
            pytest.skip(f"the {self.transport.name} transport to {pod.ref} reached a pod named {hostname!r}: "
                        "the pod's address leads to another pod (another cluster on the same pod range?)")

    def attachments(self, pod: ProbePod) -> list[status_mod.Attached]:
        p = self.core.read_namespaced_pod(pod.name, pod.namespace)
        found = status_mod.read(self.binding, self.custom, p)
        assert found is not None, f"{pod.ref} is Ready but the implementation reports no per-network status"
        return found

    def address(self, pod: ProbePod, network: str, version: int = 4) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        ip = status_mod.on(self.attachments(pod), network).address(version)
        assert ip is not None, f"{pod.ref} has no IPv{version} address on {network} in its status"
        return ip

    def dial(self, client_pod: ProbePod, host: DialTarget, port: int, request: str = "hostname",
             protocol: str = "http") -> Observation:
        """One try from `client_pod` to host:port: CONNECTED with the answer, BLOCKED with the error."""
        try:
            body = self.transport.get(client_pod.namespace, client_pod.name, "dial", {
                "host": str(host), "port": str(port), "request": request, "protocol": protocol, "tries": "1"})
            data = json.loads(body)
        except TransportError as err:
            return Observation(Seen.UNKNOWN, str(err))
        except json.JSONDecodeError:
            return Observation(Seen.UNKNOWN, f"{client_pod.ref} /dial answered no JSON: {body[:120]!r}")
        responses = [r for r in data.get("responses") or [] if r]
        if responses:
            return Observation(Seen.CONNECTED, str(responses[0]).strip())
        return Observation(Seen.BLOCKED, "; ".join(data.get("errors") or ["no response"])[:200])

    def interfaces(self, pod: ProbePod) -> dict[str, Interface]:
        return self._netinfo(pod, ("ip -j addr show", parse_addr), ("ip addr show", parse_addr_text))

    def routes(self, pod: ProbePod, version: int = 4, inside: bool = False) -> list[Route]:
        """The pod's routes; `inside`: over pods/exec whatever --probe-transport is."""
        return self._netinfo(pod, (f"ip -{version} -j route show", parse_routes),
                             (f"ip -{version} route show", parse_routes_text),
                             transport=(self.inside or self.transport) if inside else self.transport)

    def _netinfo(self, pod: ProbePod, *ways: tuple[str, Callable[[str], T]], transport: Transport | None = None) -> T:
        """The first way that works: iproute2's JSON, then the text any `ip` prints."""
        problems, transport = [], transport or self.transport
        for command, parse in ways:
            try:
                return parse(transport.shell(pod.namespace, pod.name, command))
            except (CommandError, NetInfoError) as err:
                problems.append(f"{command!r}: {err}")
            except TransportError as err:
                pytest.fail(f"{pod.ref}: could not run {command!r} in the probe pod: {err}")
        pytest.skip(f"{pod.ref}: the probe image's `ip` answered neither way: {'; '.join(problems)}")

    def delete(self, pod: ProbePod) -> None:
        try:
            self.core.delete_namespaced_pod(pod.name, pod.namespace, grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                raise
        self.made = [p for p in self.made if p != pod]
