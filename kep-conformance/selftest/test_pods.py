"""Pod bodies: probe pods as the spec asks, and both ways of asking for networks."""

from __future__ import annotations

import json
from pathlib import Path

from suite.binding import load
from suite.pods import HTTP_PORT, NetRequest, plan

IMPLEMENTATIONS = Path(__file__).resolve().parents[1] / "implementations"
MULTINET = load(IMPLEMENTATIONS / "multinet.yaml")
SIGS = load(IMPLEMENTATIONS / "kubernetes-sigs-multi-network.yaml")
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.56"


def test_probe_pod_is_unprivileged_netexec_placed_by_hostname() -> None:
    body = plan(MULTINET, "p", [NetRequest("a", interface="net1")], node="node2", probe_image=IMAGE,
                hostname="p-1234").body
    spec = body["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "node2"} and "nodeName" not in spec
    assert spec["hostname"] == "p-1234"
    for c in spec["containers"]:
        assert c["image"] == IMAGE and c["args"][0] == "netexec"
        sc = c["securityContext"]
        assert sc["runAsUser"] == 65534 and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["allowPrivilegeEscalation"] is False and sc["runAsNonRoot"] is True
        probe = c["readinessProbe"]
        if "--udp-port=-1" in c["args"]:
            assert "httpGet" not in probe, "netexec's /healthz is 412 forever without a UDP server"
    assert spec["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": HTTP_PORT}
    listed = json.loads(body["metadata"]["annotations"][str(MULTINET.networks_annotation)])
    assert listed == [{"podNetworkName": "a", "interfaceName": "net1"}]


def test_no_networks_means_no_list() -> None:
    body = plan(MULTINET, "p", None).body
    assert "annotations" not in body["metadata"]


def test_resource_claim_binding_makes_one_claim_per_network() -> None:
    made = plan(SIGS, "p", [NetRequest("default"), NetRequest("dataplane"), NetRequest("oam")])
    assert [c["metadata"]["name"] for c in made.claims] == ["p-net0", "p-net1"]
    expression = made.claims[0]["spec"]["devices"]["requests"][0]["exactly"]["selectors"][0]["cel"]["expression"]
    assert '== "dataplane"' in expression and "${network}" not in expression
    spec = made.body["spec"]
    assert spec["resourceClaims"] == [{"name": "net0", "resourceClaimName": "p-net0"},
                                      {"name": "net1", "resourceClaimName": "p-net1"}]
    assert spec["containers"][0]["resources"]["claims"] == [{"name": "net0"}, {"name": "net1"}]
    assert "annotations" not in made.body["metadata"]
