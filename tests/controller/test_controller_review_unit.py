"""The AdmissionReview wire side without a server: parsing, RFC 6902 patches, responses."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from typing import Any

import jsonpatch  # an independent RFC 6902 implementation, to apply what we emit
import pytest

from controller import admission, review
from podnetwork import names


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": "u-1", "operation": "CREATE", "userInfo": {"username": "alice"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "object": {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}},
    }
    body.update(overrides)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


@pytest.mark.parametrize("change,field", [
    (lambda r: r.update(apiVersion="admission.k8s.io/v1beta1"), "AdmissionReview of admission.k8s.io/v1"),
    (lambda r: r.update(kind="Pod"), "AdmissionReview of admission.k8s.io/v1"),
    (lambda r: r.pop("request"), "request: missing"),
    (lambda r: r["request"].pop("uid"), "request.uid"),
    (lambda r: r["request"].update(uid=7), "request.uid"),
    (lambda r: r["request"].pop("object"), "request.object"),
    (lambda r: r["request"].update(object=[]), "request.object"),
    (lambda r: r["request"].pop("userInfo"), "request.userInfo"),
    (lambda r: r["request"].update(resource={"group": "", "version": "v1", "resource": "services"}),
     "request.resource"),
    (lambda r: r["request"].update(subResource="status"), "request.subResource"),  # a CREATE
    (lambda r: r["request"].update(operation="UPDATE", oldObject={}, subResource="ephemeralcontainers"),
     "request.subResource"),
    (lambda r: r["request"].update(operation="UPDATE", oldObject={}, subResource="binding"),
     "request.subResource"),
    (lambda r: r["request"].update(resource="pods"), "request.resource"),
    (lambda r: r["request"].update(userInfo="alice"), "request.userInfo"),
    (lambda r: r["request"].update(operation="UPDATE"), "request.oldObject"),
])
def test_malformed_review_names_the_field(change: Any, field: str) -> None:
    body = request()
    change(body)
    with pytest.raises(review.BadReview, match=field.replace(".", r"\.")):
        review.parse(body)


def test_not_a_mapping_is_refused() -> None:
    body: object
    for body in (None, [], "AdmissionReview", 3):
        with pytest.raises(review.BadReview):
            review.parse(body)


def test_parse_reads_the_request() -> None:
    old = {"metadata": {"name": "p"}}
    parsed = review.parse(request(operation="UPDATE", oldObject=old, dryRun=True))
    assert (parsed.uid, parsed.operation, parsed.old, parsed.dry_run) == ("u-1", "UPDATE", old, True)
    assert parsed.user == {"username": "alice"}
    # pods/status may change annotations too, so its UPDATE is judged like the pod's
    assert review.parse(request(operation="UPDATE", oldObject=old, subResource="status")).old == old


@pytest.mark.parametrize("original,changes", [
    # a map absent on the pod is created whole
    ({"metadata": {"name": "p"}}, {"metadata": {"annotations": {"a/b": "1"}}}),
    # keys with '/' and '~' (every annotation with a prefix) are escaped, others kept
    ({"metadata": {"annotations": {"x/y": "keep", "a~b/c": "old"}}},
     {"metadata": {"annotations": {"a~b/c": "new", "k8s.v1alpha1/networks": "[]"}}}),
    # lists are replaced whole, not merged
    ({"spec": {"schedulingGates": [{"name": "other"}], "readinessGates": []}},
     {"spec": {"schedulingGates": [{"name": "other"}, {"name": "mine"}]}}),
    # a scalar replaced by a map and back
    ({"a": 1, "b": {"c": 2}}, {"a": {"x": 1}, "b": 3}),
    ({}, {}),
])
def test_json_patch_applies_as_a_merge(original: dict[str, Any], changes: dict[str, Any]) -> None:
    merged = copy.deepcopy(original)
    _merge(merged, changes)
    ops = review.json_patch(original, changes)
    assert jsonpatch.apply_patch(original, ops) == merged


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _answer(body: Any, webhook: str, validate: Any = lambda _r: None) -> dict[str, Any]:
    async def offload(call: Any) -> None:
        call()
    return asyncio.run(review.Responder(validate, offload)(body, webhook=webhook))


def test_mutation_answer_is_a_patch_the_pod_accepts() -> None:
    body = request()
    body["request"]["object"]["metadata"]["annotations"] = {
        names.NETWORKS_ANNOTATION: json.dumps([{"podNetworkName": "blue"}])}
    answer = _answer(body, admission.MUTATE_ID)["response"]
    assert answer["uid"] == "u-1" and answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(body["request"]["object"], json.loads(base64.b64decode(answer["patch"])))
    assert patched["spec"]["schedulingGates"] == [{"name": names.SCHEDULING_GATE}]
    assert patched["spec"]["readinessGates"] == [{"conditionType": names.READINESS_CONDITION}]


def test_mutation_with_nothing_to_change_sends_no_patch() -> None:
    body = request()
    body["request"]["object"]["metadata"]["annotations"] = {
        names.NETWORKS_ANNOTATION: json.dumps([{"podNetworkName": "default"}])}
    assert "patch" not in _answer(body, admission.MUTATE_ID)["response"]


@pytest.mark.parametrize(("refusal", "code", "reason"), [
    (admission.Denied, 422, "Invalid"), (admission.Forbidden, 403, "Forbidden")])
def test_denial_carries_code_and_reason(refusal: type[admission.Denied], code: int, reason: str) -> None:
    def deny(_request: review.Request) -> None:
        raise refusal("spec.x: no")
    answer = _answer(request(), admission.VALIDATE_ID, deny)["response"]
    assert answer == {"uid": "u-1", "allowed": False,
                      "status": {"code": code, "message": "spec.x: no", "reason": reason}}


def test_operations_a_webhook_does_not_judge_are_allowed_untouched() -> None:
    def fail(_request: review.Request) -> None:
        raise AssertionError("validated a DELETE")
    assert _answer(request(operation="DELETE"), admission.VALIDATE_ID, fail)["response"] == \
        {"uid": "u-1", "allowed": True}
    update = request(operation="UPDATE", oldObject={"metadata": {}})
    assert "patch" not in _answer(update, admission.MUTATE_ID)["response"]


def test_unknown_webhook_path_is_refused() -> None:
    with pytest.raises(review.BadReview, match="no webhook at /mutate-services"):
        _answer(request(), "mutate-services")


def test_configurations_register_only_operations_judged() -> None:
    mutating, validating = admission.webhook_configurations("https://127.0.0.1:1", "Q0E=")
    for configuration in (mutating, validating):
        for hook in configuration["webhooks"]:
            path = hook["clientConfig"]["url"].rsplit("/", 1)[1]
            for rule in hook["rules"]:
                assert set(rule["operations"]) <= set(admission.OPERATIONS[path]), hook["name"]
