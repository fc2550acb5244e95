"""multinet/cluster/addon.py: rendering an overlay for a cluster, and reading readiness."""

from __future__ import annotations

import json
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from multinet.cluster import addon
from tests.deploy.conftest import container, pod_spec

LOCAL = addon.LocalCluster(node_root=Path("/srv/cluster-a/nodes"), apiserver_host="10.9.0.1",
                           apiserver_port=16443, netns_prefix="mnabc-")


@pytest.fixture(scope="module")
def local(kubectl: str) -> list[dict[str, Any]]:
    return addon.render(addon.DEPLOY / "overlays" / "local", "localhost/multinet:0.1.0-dev", kubectl, LOCAL)


def test_render_sets_the_image(local: list[dict[str, Any]]) -> None:
    images = {c["image"] for o in local if o["kind"] in ("Deployment", "DaemonSet")
              for c in o["spec"]["template"]["spec"].get("initContainers", []) + o["spec"]["template"]["spec"]["containers"]}
    assert images == {"localhost/multinet:0.1.0-dev"}


def test_render_moves_every_node_path_under_the_cluster_root(local: list[dict[str, Any]]) -> None:
    text = json.dumps(local)
    assert addon.LOCAL_NODE_ROOT not in text
    spec = pod_spec(local, "DaemonSet", "multinet-node")
    volume = next(v for v in spec["volumes"] if v["name"] == "node-root")
    assert volume["hostPath"]["path"] == "/srv/cluster-a/nodes"
    agent = container(spec, "agent")
    mount = next(m for m in agent["volumeMounts"] if m["name"] == "node-root")
    assert mount["mountPath"] == "/srv/cluster-a/nodes"
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["MULTINET_CNI_SOCKET"] == "/srv/cluster-a/nodes/$(NODE_NAME)/agent.sock"


def test_render_gives_the_local_values_to_the_overlay(local: list[dict[str, Any]]) -> None:
    maps = [o for o in local if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(addon.LOCAL_CONFIG)]
    assert len(maps) == 1
    config = maps[0]
    assert config["data"] == {"apiserver-host": "10.9.0.1", "apiserver-port": "16443", "netns-prefix": "mnabc-"}
    # Every reference follows the generated (hashed) name.
    agent = container(pod_spec(local, "DaemonSet", "multinet-node"), "agent")
    refs = {e["valueFrom"]["configMapKeyRef"]["name"] for e in agent["env"] if "configMapKeyRef" in e.get("valueFrom", {})}
    assert refs == {config["metadata"]["name"]}
    controller = container(pod_spec(local, "Deployment", "multinet-controller"), "controller")
    from_config = {e["name"] for e in controller["env"] if "configMapKeyRef" in e.get("valueFrom", {})}
    assert from_config == {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
    assert {e["valueFrom"]["configMapKeyRef"]["name"] for e in controller["env"]
            if "configMapKeyRef" in e.get("valueFrom", {})} == {config["metadata"]["name"]}


def test_render_hands_test_faults_to_every_multinet_container(kubectl: str) -> None:
    faulty = addon.LocalCluster(LOCAL.node_root, LOCAL.apiserver_host, LOCAL.apiserver_port, LOCAL.netns_prefix,
                                faults=frozenset({"duplicate-address", "cross-node-drop"}))
    objects = addon.render(addon.DEPLOY / "overlays" / "local", "localhost/multinet:0.1.0-dev", kubectl, faulty)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    assert {o["metadata"]["name"] for o in workloads} == {name for _, name in addon.WORKLOADS}
    for obj in workloads:
        for c in obj["spec"]["template"]["spec"]["containers"]:
            values = [e.get("value") for e in c.get("env") or [] if e["name"] == "MULTINET_FAULTS"]
            assert values == ["cross-node-drop,duplicate-address"], (obj["metadata"]["name"], c["name"])


def test_render_without_faults_sets_no_fault_variable(local: list[dict[str, Any]]) -> None:
    assert "MULTINET_FAULTS" not in json.dumps(local)


def test_local_cluster_values_are_checked_by_field() -> None:
    with pytest.raises(ValueError) as err:
        addon.LocalCluster(node_root=Path("nodes"), apiserver_host="", apiserver_port=0, netns_prefix="toolong-")
    for field in ("node_root", "apiserver_host", "apiserver_port", "netns_prefix"):
        assert field in str(err.value)


def test_a_bad_image_reference_is_refused(kubectl: str) -> None:
    with pytest.raises(ValueError, match="image: 'multinet' is not NAME:TAG"):
        addon.render(addon.DEPLOY / "base", "multinet", kubectl)


def test_a_broken_overlay_is_reported_with_kustomize_s_reason(tmp_path: Path, kubectl: str) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(addon.AddonError, match="missing.yaml"):
        addon.render(tmp_path, "localhost/multinet:0.1.0", kubectl)


def test_image_ref_reads_the_archive_tag(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        data = json.dumps([{"Config": "c.json", "RepoTags": ["localhost/multinet:9.9.9"], "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, BytesIO(data))
    assert addon.image_ref(archive) == "localhost/multinet:9.9.9"


# --- readiness, from the status the controllers write ------------------------------------

def deployment(replicas: int, ready: int, updated: int, total: int, generation: int = 2,
               observed: int = 2) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "multinet-controller", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
                       "replicas": total}}


def daemonset(desired: int, ready: int, updated: int) -> dict[str, Any]:
    return {"kind": "DaemonSet", "metadata": {"name": "multinet-node", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": desired, "numberReady": ready,
                       "updatedNumberScheduled": updated}}


@pytest.mark.parametrize(("obj", "done", "text"), [
    (deployment(2, 2, 2, 2), True, "multinet-controller 2/2"),
    (deployment(2, 1, 2, 2), False, "multinet-controller 1/2"),
    (deployment(2, 2, 1, 3), False, "multinet-controller 2/2 (rolling out)"),  # an old pod is still there
    (deployment(2, 2, 2, 2, generation=3), False, "multinet-controller 2/2 (rolling out)"),  # spec not seen
    (daemonset(3, 3, 3), True, "multinet-node 3/3"),
    (daemonset(3, 3, 2), False, "multinet-node 3/3 (rolling out)"),
    (daemonset(0, 0, 0), True, "multinet-node 0/0"),  # e.g. the software target where every IPU is external
])
def test_readiness(obj: dict[str, Any], done: bool, text: str) -> None:
    state = addon.readiness(obj)
    assert (state.done, str(state)) == (done, text)


def test_pod_problems_name_the_container_and_its_reason() -> None:
    pods = [
        {"metadata": {"name": "multinet-node-a"}, "spec": {"nodeName": "node1"},
         "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                    "initContainerStatuses": [{"name": "install-cni", "ready": False,
                                               "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                     "message": "back-off 40s restarting"}},
                                               "lastState": {"terminated": {"message": "no space left"}}}]}},
        {"metadata": {"name": "multinet-node-b"}, "spec": {"nodeName": "node2"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "multinet-controller-x"}, "spec": {},
         "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                        "message": "0/2 nodes are available"}]}},
    ]
    assert list(addon.pod_problems(pods)) == [
        "multinet-node-a on node1: install-cni: CrashLoopBackOff (no space left)",
        "multinet-controller-x on unscheduled: Pending (0/2 nodes are available)",
    ]

