"""Admission of pods: static validation, auto-population, access control and gates.

`mutate` and `validate` are plain functions over the pod and the requesting
user; `webhook_configurations` builds the two webhook configuration objects.
Pods carrying the networks annotation go through fail-closed webhooks selected
by a CEL `matchConditions` (an objectSelector cannot see annotations); every
other pod goes through a fail-open one, so an outage of the controller never
blocks ordinary pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from podnetwork import names
from podnetwork.networks import DEFAULT_NETWORKS, Network, NetworksError, encode_networks, pod_networks

Obj = dict[str, Any]
# (user info, resource plural, object name, namespace or None) -> (allowed, reason)
MayUse = Callable[[Mapping[str, Any], str, str, str | None], tuple[bool, str]]
# (namespace, PodNetworkAttachment name) -> its spec.podNetworkName, None when unknown
AttachmentNetwork = Callable[[str, str], str | None]

CONFIGURATION_NAME = "multinet-controller"
MUTATE_ID = "mutate-pods"
VALIDATE_ID = "validate-pods"
# the resource the webhooks serve, as an AdmissionReview names it
POD_RESOURCE = {"group": "", "version": "v1", "resource": "pods"}
# what each webhook judges; its configurations register these operations (or fewer)
OPERATIONS = {MUTATE_ID: ("CREATE",), VALIDATE_ID: ("CREATE", "UPDATE")}

HAS_NETWORKS = (
    f"has(object.metadata.annotations) && '{names.NETWORKS_ANNOTATION}' in object.metadata.annotations"
)

def _annotation_of(obj: str) -> str:
    key = names.NETWORKS_ANNOTATION
    return (f"(has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations ? "
            f"{obj}.metadata.annotations['{key}'] : '')")


# On UPDATE only when the annotation changes: every other pod update (status, the
# controller's own gate removal, labels) never depends on this webhook being up.
NETWORKS_CHANGED = f"{_annotation_of('object')} != {_annotation_of('oldObject')}"


class Denied(Exception):
    """The request is refused; the message goes to the user verbatim.

    `code` is the HTTP status the apiserver answers with: 422 Invalid for a
    networks list that breaks a rule, 403 Forbidden when the user lacks a grant.
    """

    code = 422
    reason = "Invalid"  # the Status reason that goes with `code`


class Forbidden(Denied):
    """The requesting user may not `use` a referenced network (KEP Phase II)."""

    code = 403
    reason = "Forbidden"


def _networks(pod: Mapping[str, Any]) -> tuple[Network, ...]:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    try:
        return pod_networks(meta.get("annotations"), bool(spec.get("hostNetwork")))
    except NetworksError as exc:
        raise Denied(str(exc)) from None


def mutate(pod: Mapping[str, Any]) -> Obj:
    """The changes to make to a pod being created, as a partial object (merge-patch shape)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    networks = _networks(pod)
    patch: Obj = {}
    if names.NETWORKS_ANNOTATION not in annotations and not spec.get("hostNetwork"):
        # KEP "Auto-population": no networks means the cluster default network.
        patch["metadata"] = {"annotations": {names.NETWORKS_ANNOTATION: encode_networks(DEFAULT_NETWORKS)}}
    if any(not n.is_default for n in networks):
        gates = list(spec.get("schedulingGates") or [])
        if not any(g.get("name") == names.SCHEDULING_GATE for g in gates):
            gates.append({"name": names.SCHEDULING_GATE})
        readiness = list(spec.get("readinessGates") or [])
        if not any(g.get("conditionType") == names.READINESS_CONDITION for g in readiness):
            readiness.append({"conditionType": names.READINESS_CONDITION})
        patch["spec"] = {"schedulingGates": gates, "readinessGates": readiness}
    return patch


def validate(pod: Mapping[str, Any], old: Mapping[str, Any] | None, user: Mapping[str, Any],
             may_use: MayUse, attachment_network: AttachmentNetwork = lambda _ns, _name: None) -> None:
    """Raise Denied naming the entry and field, or the network the user may not use."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if old is not None:
        before = (old.get("metadata") or {}).get("annotations") or {}
        if before.get(names.NETWORKS_ANNOTATION) != annotations.get(names.NETWORKS_ANNOTATION):
            # As the apiserver answers any other immutable pod field: 422 Invalid.
            raise Denied(f"metadata.annotations[{names.NETWORKS_ANNOTATION}]: annotation "
                         f"{names.NETWORKS_ANNOTATION} is immutable once the pod exists")
        return
    if names.ALLOCATIONS_ANNOTATION in annotations:
        raise Denied(f"annotation {names.ALLOCATIONS_ANNOTATION} is written by the controller, "
                     "not set at creation")
    networks = _networks(pod)
    namespace = meta.get("namespace")
    account = service_account_user(namespace or "", (pod.get("spec") or {}).get("serviceAccountName"))
    denied = [msg for n in networks if not n.is_default
              for msg in [_access_denial(n, namespace, user, account, may_use, attachment_network)] if msg]
    if denied:
        raise Forbidden("; ".join(denied))


def service_account_user(namespace: str, name: str | None) -> dict[str, Any]:
    """The user info a pod's service account authenticates as."""
    account = name or "default"
    return {"username": f"system:serviceaccount:{namespace}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]}


def _access_denial(net: Network, namespace: str | None, user: Mapping[str, Any], account: Mapping[str, Any],
                   may_use: MayUse, attachment_network: AttachmentNetwork) -> str:
    """KEP Phase II: the creator must be allowed to `use` each referenced network.

    As PodSecurityPolicy's `use` did, a grant to the pod's own service account also
    counts: pods that workload controllers (ReplicaSet, Job, ...) create on a user's
    behalf are requested by the controller, so a grant to that user cannot be seen.
    Through a PodNetworkAttachment, `use` of the attachment or of its PodNetwork
    (the object the KEP puts under access control) will do.
    """
    who = user.get("username", "?")
    why: list[str] = []

    def allowed(resource: str, name: str, scope: str | None) -> bool:
        ok, reason = may_use(user, resource, name, scope)
        if not ok and reason:
            why.append(reason)
        return ok or (account.get("username") != who and may_use(account, resource, name, scope)[0])

    if net.pod_network_name:
        what = f"PodNetwork {net.pod_network_name!r}"
        rule = f"verb 'use' on {names.POD_NETWORK_PLURAL}.{names.GROUP} {net.pod_network_name!r}"
        if allowed(names.POD_NETWORK_PLURAL, net.pod_network_name, None):
            return ""
    else:
        att = net.pod_network_attachment_name
        what = f"PodNetworkAttachment {namespace}/{att}"
        rule = (f"verb 'use' on {names.POD_NETWORK_ATTACHMENT_PLURAL}.{names.GROUP} {att!r} in namespace "
                f"{namespace!r}")
        if allowed(names.POD_NETWORK_ATTACHMENT_PLURAL, att, namespace):
            return ""
        network = attachment_network(namespace or "", att)
        if network:
            rule += f", or on {names.POD_NETWORK_PLURAL}.{names.GROUP} {network!r}"
            if allowed(names.POD_NETWORK_PLURAL, network, None):
                return ""
    return (f"user {who!r} may not use {what} (needs {rule}, granted to the user or to the pod's "
            f"service account {account.get('username')!r})" + (f": {why[0]}" if why else ""))


def webhook_configurations(url: str, ca_bundle: str) -> tuple[Obj, Obj]:
    """The MutatingWebhookConfiguration and ValidatingWebhookConfiguration (admissionregistration/v1)."""
    pods = POD_RESOURCE["resource"]
    rule = {"apiGroups": [POD_RESOURCE["group"]], "apiVersions": [POD_RESOURCE["version"]], "scope": "Namespaced"}

    def hook(name: str, path: str, fail: bool, condition: str, operations: list[str],
             resources: tuple[str, ...] = (pods,)) -> Obj:
        return {
            # The CREATE validation holds the referenced networks in use (a finalizer
            # patch), which it skips on dry run.
            "name": name, "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun" if path == VALIDATE_ID else "None",
            "clientConfig": {"url": f"{url.rstrip('/')}/{path}", "caBundle": ca_bundle},
            "rules": [{**rule, "operations": operations, "resources": list(resources)}],
            "failurePolicy": "Fail" if fail else "Ignore",
            "timeoutSeconds": 10 if fail else 3,
            "matchConditions": [{"name": "networks-annotation", "expression": condition}],
            "matchPolicy": "Equivalent",
        }

    mutating: Obj = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [
            hook("networks.pods.multinet.io", MUTATE_ID, True, HAS_NETWORKS, ["CREATE"]),
            hook("default.pods.multinet.io", MUTATE_ID, False, f"!({HAS_NETWORKS})", ["CREATE"]),
        ],
    }
    mutating["webhooks"][0]["reinvocationPolicy"] = "Never"
    validating: Obj = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [
            hook("networks.pods.multinet.io", VALIDATE_ID, True, HAS_NETWORKS, ["CREATE"]),
            # pods/status carries the pod's annotations too (the apiserver keeps only its spec)
            hook("update.pods.multinet.io", VALIDATE_ID, True, NETWORKS_CHANGED, ["UPDATE"],
                 (pods, f"{pods}/status")),
        ],
    }
    return mutating, validating
