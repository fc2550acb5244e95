"""Fixtures of the controller's tests against the real local control plane."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.kube import Kube
from podnetwork import names
from controller_support import ControllerProcess, FakeNodes, pod_manifest, suffix, wait_for


@pytest.fixture(scope="session")
def kube(kubeconfig: Any) -> Kube:
    return Kube.from_kubeconfig(str(kubeconfig))


@pytest.fixture(scope="session")
def controller(kubeconfig: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    proc = ControllerProcess(str(kubeconfig), log)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def nodes(kube: Kube) -> Iterator[FakeNodes]:
    fake = FakeNodes(kube.core, client.CoordinationV1Api(kube.api))
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"mna-{suffix()}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        # Pods bound to nodes without a kubelet only go when deleted with no grace.
        kube.core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        kube.core.delete_namespace(name)


class Networks:
    """Creates NetworkParams / PodNetworks with unique names and deletes them after the test."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.made: list[tuple[str, str, str]] = []  # (group, plural, name)

    def params(self, spec: dict[str, Any], name: str | None = None) -> str:
        name = name or f"mna-params-{suffix()}"
        self.kube.create_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL, {
            "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
            "metadata": {"name": name}, "spec": spec})
        self.made.append((names.PARAMS_GROUP, names.PARAMS_PLURAL, name))
        return name

    def network(self, params: str | None = None, name: str | None = None, enabled: bool = True,
                refs: list[dict[str, Any]] | None = None) -> str:
        name = name or f"mna-net-{suffix()}"
        spec: dict[str, Any] = {"enabled": enabled, "provider": names.PROVIDER}
        if params is not None:
            spec["parametersRefs"] = [{"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": params}]
        if refs is not None:
            spec["parametersRefs"] = refs
        self.kube.create_cluster(names.GROUP, names.POD_NETWORK_PLURAL, {
            "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
            "metadata": {"name": name}, "spec": spec})
        self.made.append((names.GROUP, names.POD_NETWORK_PLURAL, name))
        return name

    def ready_network(self, subnet: str = "10.77.0.0/24", **family: Any) -> str:
        params = self.params({"topology": "L2", "ipv4": {"subnet": subnet, **family}})
        name = self.network(params)
        wait_for(f"PodNetwork {name} Ready", lambda: condition(self.kube, name, "Ready") == "True")
        return name

    def cleanup(self) -> None:
        for group, plural, name in reversed(self.made):
            try:
                self.kube.custom.delete_cluster_custom_object(group, names.VERSION, plural, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def networks(kube: Kube, controller: ControllerProcess) -> Iterator[Networks]:
    made = Networks(kube)
    try:
        yield made
    finally:
        made.cleanup()


def conditions(kube: Kube, name: str, plural: str = names.POD_NETWORK_PLURAL,
               namespace: str | None = None) -> dict[str, dict[str, Any]]:
    if namespace:
        obj = kube.get_namespaced(names.GROUP, plural, namespace, name)
    else:
        group = names.PARAMS_GROUP if plural == names.PARAMS_PLURAL else names.GROUP
        obj = kube.get_cluster(group, plural, name)
    if obj is None:
        return {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def condition(kube: Kube, name: str, type_: str, plural: str = names.POD_NETWORK_PLURAL,
              namespace: str | None = None) -> str | None:
    c = conditions(kube, name, plural, namespace).get(type_)
    return None if c is None else str(c["status"])


@pytest.fixture
def make_pod(kube: Kube, namespace: str, nodes: FakeNodes, controller: ControllerProcess
             ) -> Callable[..., dict[str, Any]]:
    def make(name: str, networks_: list[dict[str, Any]] | None, **annotations: str) -> dict[str, Any]:
        body = pod_manifest(name, networks_, nodes.pod_placement(), **annotations)
        return kube.plain(kube.core.create_namespaced_pod(namespace, body))
    return make


def pod_gated(kube: Kube, namespace: str, name: str) -> bool:
    pod = kube.get_pod(namespace, name)
    assert pod is not None
    return any(g["name"] == names.SCHEDULING_GATE for g in pod["spec"].get("schedulingGates") or [])


def allocations_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]] | None:
    pod = kube.get_pod(namespace, name)
    text = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(names.ALLOCATIONS_ANNOTATION)
    return None if text is None else list(json.loads(text))


def events_of(kube: Kube, namespace: str, name: str) -> list[str]:
    items = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [f"{e.reason}: {e.message}" for e in items]
