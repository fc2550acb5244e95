"""The running controller's webhook server, reached as the apiserver reaches it.

Each request goes over HTTPS to the URL and CA bundle the controller registered
in its webhook configurations: a malformed AdmissionReview is a 400 whose body
names the field, and a well-formed one gets an AdmissionReview answer with the
request's uid, the mutation as an RFC 6902 patch.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import jsonpatch
import pytest

from controller import admission
from podnetwork import names
from tests.controller.controller_support import ControllerProcess, Kube

pytestmark = pytest.mark.cluster


def registered(kube: Kube, controller: ControllerProcess) -> tuple[str, ssl.SSLContext]:
    """The mutating hook's URL and a TLS context trusting only the CA it was registered with."""
    config = kube.admission.read_mutating_webhook_configuration(admission.CONFIGURATION_NAME)
    assert config.webhooks, "the controller registered no mutating webhook"
    client_config = config.webhooks[0].client_config
    assert client_config.url and client_config.ca_bundle, client_config
    trust = ssl.create_default_context(cadata=base64.b64decode(client_config.ca_bundle).decode())
    return client_config.url.rsplit("/", 1)[0], trust


def post(base: str, trust: ssl.SSLContext, webhook: str, body: Any) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/{webhook}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=trust, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def review(**request: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": "wire-1", "operation": "CREATE", "userInfo": {"username": "wire"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "dryRun": True,
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "pause"}]}},
    }
    body.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


@pytest.mark.parametrize(("body", "names_field"), [
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}, "admission.k8s.io/v1"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
    (review(uid=None), "request.uid"),
    (review(object="a pod"), "request.object"),
    (review(resource={"group": "", "version": "v1", "resource": "secrets"}), "request.resource"),
    (review(operation="UPDATE"), "request.oldObject"),
])
def test_malformed_review_is_400_naming_the_field(kube: Kube, controller: ControllerProcess,
                                                  body: Any, names_field: str) -> None:
    base, trust = registered(kube, controller)
    for webhook in admission.OPERATIONS:
        status, text = post(base, trust, webhook, body)
        assert status == 400 and names_field in text.decode(), (webhook, status, text)


def test_not_json_is_refused(kube: Kube, controller: ControllerProcess) -> None:
    base, trust = registered(kube, controller)
    status, _ = post(base, trust, admission.MUTATE_ID, b"{not json")
    assert 400 <= status < 500, status


def test_unknown_webhook_path_is_refused(kube: Kube, controller: ControllerProcess) -> None:
    base, trust = registered(kube, controller)
    status, _ = post(base, trust, "delete-everything", review())
    assert 400 <= status < 500, status


def test_mutation_answer_is_a_patch_that_gates_the_pod(kube: Kube, controller: ControllerProcess) -> None:
    base, trust = registered(kube, controller)
    body = review()
    body["request"]["object"]["metadata"]["annotations"] = {
        names.NETWORKS_ANNOTATION: json.dumps([{"podNetworkName": "some-net"}])}
    status, text = post(base, trust, admission.MUTATE_ID, body)
    assert status == 200, (status, text)
    answer = json.loads(text)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "wire-1" and response["allowed"] is True and response["patchType"] == "JSONPatch"
    pod = jsonpatch.apply_patch(body["request"]["object"], json.loads(base64.b64decode(response["patch"])))
    assert {"name": names.SCHEDULING_GATE} in pod["spec"]["schedulingGates"]
    assert pod["spec"]["containers"] == body["request"]["object"]["spec"]["containers"]


def test_validation_refusal_names_the_annotation(kube: Kube, controller: ControllerProcess) -> None:
    base, trust = registered(kube, controller)
    body = review()
    body["request"]["object"]["metadata"]["annotations"] = {names.NETWORKS_ANNOTATION: "[{}]"}
    status, text = post(base, trust, admission.VALIDATE_ID, body)
    assert status == 200, (status, text)
    response = json.loads(text)["response"]
    assert response["uid"] == "wire-1" and response["allowed"] is False
    assert response["status"]["code"] == 422 and names.NETWORKS_ANNOTATION in response["status"]["message"]
