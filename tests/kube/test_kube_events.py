"""The one Event writer, against the real apiserver."""

from __future__ import annotations

import pytest

from kube import EventWriter, Kube, ObjectRef
from kube.resources import EVENTS, NAMESPACES

pytestmark = pytest.mark.cluster


def test_event_names_its_object_source_and_is_cut_to_size(kube: Kube, namespace: str) -> None:
    ns = kube.get(NAMESPACES, namespace)
    writer = EventWriter(kube, "multinet-test", host="node-a")
    made = writer.post(ObjectRef("Pod", "p", namespace, uid="u-1"), "NetworkAttachFailed", "x" * 5000)
    events = kube.list(EVENTS, namespace, field_selector="involvedObject.name=p")
    assert [e["metadata"]["name"] for e in events] == [made["metadata"]["name"]]
    event = events[0]
    assert event["involvedObject"] == {"kind": "Pod", "name": "p", "namespace": namespace, "uid": "u-1",
                                       "apiVersion": "v1"}
    assert event["source"] == {"component": "multinet-test", "host": "node-a"}
    assert (event["reason"], event["type"], len(event["message"])) == ("NetworkAttachFailed", "Warning", 1024)
    assert event["firstTimestamp"] == event["lastTimestamp"] and event["firstTimestamp"].endswith("Z")
    # A cluster-scoped object's Event lands in `default`, as kubectl looks for it.
    other = writer.post(ObjectRef.of(ns, kind="Namespace"), "Checked", "fine", type_="Normal")
    assert other["metadata"]["namespace"] == "default" and "namespace" not in other["involvedObject"]
    kube.delete(EVENTS, other["metadata"]["name"], "default")
