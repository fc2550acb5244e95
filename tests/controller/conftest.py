"""Fixtures of the controller's tests against the real local control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.controller.controller_support import Kube
from tests.support.wait import default_service_account
from tests.controller.controller_support import ControllerProcess, FakeNodes, Networks, pod_manifest, suffix


@pytest.fixture(scope="session")
def kube(kubeconfig: Any) -> Kube:
    return Kube.from_kubeconfig(str(kubeconfig))


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
        default_service_account(kube, name, timeout=30)
        yield name
    finally:
        # Pods bound to nodes without a kubelet only go when deleted with no grace.
        kube.core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        kube.core.delete_namespace(name)


@pytest.fixture
def networks(kube: Kube, controller: ControllerProcess) -> Iterator[Networks]:
    made = Networks(kube)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def make_pod(kube: Kube, namespace: str, nodes: FakeNodes, controller: ControllerProcess
             ) -> Callable[..., dict[str, Any]]:
    def make(name: str, networks_: list[dict[str, Any]] | None, **annotations: str) -> dict[str, Any]:
        body = pod_manifest(name, networks_, nodes.pod_placement(), **annotations)
        return kube.plain(kube.core.create_namespaced_pod(namespace, body))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    return make
