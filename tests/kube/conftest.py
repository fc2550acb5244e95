"""Fixtures of the adapter's tests against the real local control plane."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.wait import default_service_account

from kube import Kube, NotFound, Resource
from kube.resources import CRDS, NAMESPACES



def suffix() -> str:
    return uuid.uuid4().hex[:6]


def widget(resource: Resource, name: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": name},
            "spec": dict(spec)}


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Kube:
    return Kube.from_kubeconfig(str(kubeconfig))


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"mnk-{suffix()}"
    kube.create(NAMESPACES, {"metadata": {"name": name}})
    default_service_account(kube, name)
    try:
        yield name
    finally:
        kube.delete(NAMESPACES, name)


@pytest.fixture(scope="session")
def widgets(kube: Kube) -> Iterator[Resource]:
    """A kind of the tests' own, in a group new to this run: a fresh CRD gets a fresh watch
    cache on the apiserver, whose window starts at its creation, so an old
    resourceVersion is reliably Gone."""
    resource = Resource(f"t{suffix()}.kube-test.multinet.io", "v1", "widgets", kind="Widget")
    name = f"{resource.plural}.{resource.group}"
    kube.create(CRDS, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
        "spec": {"group": resource.group, "scope": "Namespaced",
                 "names": {"plural": resource.plural, "singular": "widget", "kind": resource.kind},
                 "versions": [{"name": resource.version, "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}})
    try:
        deadline = time.monotonic() + 60
        while not _established(kube, name):
            assert time.monotonic() < deadline, f"CRD {name} never became Established"
            time.sleep(0.2)
        yield resource
    finally:
        try:
            kube.delete(CRDS, name)
        except NotFound:
            pass


def _established(kube: Kube, name: str) -> bool:
    conditions = (kube.get(CRDS, name).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
