"""The admission webhook with generated networks annotations, through the apiserver.

`multinet controller` serves its webhooks to the real kube-apiserver; each
case is a pod create (or an update of a live pod's annotation) with dry run,
so nothing is stored and no network is held. Every answer is an admission
(201/200) or a 4xx whose message names the annotation, never a 500 or a
timeout; a create is refused exactly when the KEP's static validation
(podnetwork.networks) finds the annotation wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from podnetwork.names import NETWORKS_ANNOTATION
from podnetwork.networks import NetworksError, pod_networks
from tests.controller.controller_support import ControllerProcess
from tests.support import cni as testing
from tests.support.fuzz import TALLY

pytestmark = pytest.mark.cluster
TARGET = "admission webhook"
NAMES = ["default", "fz-net-a", "fz-net-b", "..", ".", "a" * 253, "a" * 254, "", "UPPER", "a/b", "ünï", "x y"]
IFNAMES = ["eth0", "net1", "net2", "x" * 15, "x" * 16, "a b", "..", ".", "n:1", "é" * 8, "", "a/b", "\t"]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                        max_leaves=6)
entry = st.fixed_dictionaries({}, optional={
    "podNetworkName": st.sampled_from(NAMES) | anything,
    "podNetworkAttachmentName": st.sampled_from(NAMES) | anything,
    "interfaceName": st.sampled_from(IFNAMES) | anything,
    "isDefaultGW4": st.booleans() | anything,
    "isDefaultGW6": st.booleans() | anything,
    "extra": anything,
})
# Entries a user means: one reference, a plausible interface, maybe a gateway.
sensible = st.fixed_dictionaries(
    {}, optional={"interfaceName": st.sampled_from(["net1", "net2", "eth0", "fast"]),
                  "isDefaultGW4": st.booleans(), "isDefaultGW6": st.booleans()}).flatmap(
    lambda d: st.sampled_from(["podNetworkName", "podNetworkAttachmentName"]).flatmap(
        lambda ref: st.sampled_from(["default", "fz-net-a", "fz-net-b", "fz-att"]).map(lambda n: {**d, ref: n})))
networks_values = st.one_of(
    st.lists(sensible, min_size=1, max_size=3).map(json.dumps),
    st.lists(sensible, min_size=1, max_size=3).map(json.dumps),
    st.lists(entry, max_size=5).map(json.dumps),
    st.lists(entry, max_size=5).map(json.dumps),
    anything.map(json.dumps),
    st.text(max_size=80),
    st.sampled_from(["", "[", "[{}]", "null", "[]", '[{"podNetworkName": "default"}]', "[" * 5000 + "]" * 5000,
                     json.dumps([{"podNetworkName": "fz-net-a"}] * 3)]),
)


@pytest.fixture(scope="module")
def controller(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    work = tmp_path_factory.mktemp("controller")
    proc = ControllerProcess(str(kubeconfig), work / "controller.log", "--cert-dir", str(work / "certs"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    objects = testing.ClusterObjects(api, "fz")
    try:
        yield objects.namespace()
    finally:
        objects.close()


def pod(name: str, networks: str | None, host_network: bool = False) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {} if networks is None else {NETWORKS_ANNOTATION: networks}},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                     "hostNetwork": host_network}}


def refusal(err: ApiException) -> tuple[int, str]:
    try:
        message = str(json.loads(err.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = str(err.body)
    assert err.status is not None, err
    return int(err.status), message


def names_the_field(message: str) -> bool:
    return NETWORKS_ANNOTATION in message or "metadata.annotations" in message


def test_generated_annotations_on_create(controller: ControllerProcess, api: client.ApiClient,
                                         namespace: str) -> None:
    core = client.CoreV1Api(api)

    @SETTINGS
    @given(value=networks_values, host_network=st.booleans() | st.just(False))
    def one(value: str, host_network: bool) -> None:
        try:
            pod_networks({NETWORKS_ANNOTATION: value}, host_network)
            valid = True
        except (NetworksError, RecursionError):  # nested too deep: not a networks list either
            valid = False
        try:
            core.create_namespaced_pod(namespace, pod("fz-fuzz", value, host_network), dry_run="All",  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
                                       _request_timeout=30)
            status, message = 201, ""
        except ApiException as err:
            status, message = refusal(err)
        TALLY.count(TARGET, f"create ({'valid' if valid else 'invalid'}): {status}")
        assert status < 500, (status, message, value)
        if status != 201:
            assert status in (400, 403, 422) and names_the_field(message), (status, message, value)
        assert (status == 201) == valid, (status, message, value)

    one()


def test_generated_annotations_on_update(controller: ControllerProcess, api: client.ApiClient,
                                         namespace: str) -> None:
    """The annotation of a live pod is immutable: any change is a 422 naming it."""
    core = client.CoreV1Api(api)
    first = json.dumps([{"podNetworkName": "default"}])
    core.create_namespaced_pod(namespace, pod("fz-live", first))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too

    @SETTINGS
    @given(value=networks_values)
    def one(value: str) -> None:
        patch = {"metadata": {"annotations": {NETWORKS_ANNOTATION: value}}}
        try:
            core.patch_namespaced_pod("fz-live", namespace, patch, dry_run="All", _request_timeout=30)
            status, message = 200, ""
        except ApiException as err:
            status, message = refusal(err)
        TALLY.count(TARGET, f"update: {status}")
        if value == first:
            assert status == 200, (status, message)
        else:
            assert status == 422 and "immutable" in message and names_the_field(message), (status, message, value)

    try:
        one()
    finally:
        core.delete_namespaced_pod("fz-live", namespace, grace_period_seconds=0)
