"""deploy/ as kustomize renders it: the objects, their privileges, probes, paths and flags."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from multinet.cli import build_parser
from multinet.cluster import addon
from podnetwork import crds as podnetwork_crds
from tests.deploy.conftest import OVERLAYS, container, find, pod_spec, repo_path

Objects = list[dict[str, Any]]
LONG_RUNNING = (("DaemonSet", "multinet-node", "agent"), ("DaemonSet", "multinet-ipu", "ipu"),
                ("Deployment", "multinet-controller", "controller"))


def node_script(name: str) -> ModuleType:
    path = repo_path("deploy", "base", "node", name)
    spec = importlib.util.spec_from_file_location(name.replace("-", "_").removesuffix(".py"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def containers(objects: Objects) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container and init container."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            spec = obj["spec"]["template"]["spec"]
            out += [(obj["metadata"]["name"], spec, c) for c in spec.get("initContainers", []) + spec["containers"]]
    return out


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


def test_crd_copies_equal_the_api() -> None:
    wanted = addon.crd_files()
    on_disk = {p.name: p.read_text() for p in addon.CRD_COPY.iterdir()}
    assert sorted(on_disk) == sorted(wanted), "run: python -m multinet.cluster.addon --write-crds"
    for name, text in wanted.items():
        assert on_disk[name] == text, f"deploy/base/crds/{name} differs: python -m multinet.cluster.addon --write-crds"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_holds_the_whole_addon(rendered: dict[str, Objects], overlay: str) -> None:
    objects = rendered[overlay]
    crds = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition")
    assert crds == sorted(o["metadata"]["name"] for o in map(_load, podnetwork_crds.CRD_DIR.glob("*.yaml")))
    for kind, name in (("Namespace", "multinet-system"), ("Deployment", "multinet-controller"),
                       ("DaemonSet", "multinet-node"), ("DaemonSet", "multinet-ipu"),
                       ("Service", "multinet-webhook"), ("ValidatingAdmissionPolicy", "multinet-agent-own-node"),
                       ("ValidatingAdmissionPolicyBinding", "multinet-agent-own-node")):
        find(objects, kind, name)
    assert find(objects, "Deployment", "multinet-controller")["spec"]["replicas"] == 2
    namespaced = [o for o in objects if o["kind"] not in _CLUSTER_SCOPED]
    assert {o["metadata"].get("namespace") for o in namespaced} <= {"multinet-system", "kube-system"}


_CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                   "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def _load(path: Path) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_the_multinet_image(rendered: dict[str, Objects], overlay: str) -> None:
    for workload, _, c in containers(rendered[overlay]):
        assert c["image"] == "localhost/multinet:0.1.0", (workload, c["name"])
        assert c["imagePullPolicy"] == "IfNotPresent", (workload, c["name"])  # locally imported, no registry
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", (workload, c["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_privileged_only_where_it_must_be(rendered: dict[str, Objects], overlay: str) -> None:
    privileged = {(w, c["name"]) for w, _, c in containers(rendered[overlay])
                  if (c.get("securityContext") or {}).get("privileged")}
    expected = {("multinet-node", "agent"), ("multinet-ipu", "ipu")}
    if overlay != "overlays/local":  # the local cluster has IPU namespaces of its own
        expected |= {("multinet-node", "netns"), ("multinet-ipu", "netns")}
    assert privileged == expected
    objects = rendered[overlay]
    controller = pod_spec(objects, "Deployment", "multinet-controller")
    assert controller["securityContext"]["runAsNonRoot"] is True
    assert not controller.get("hostNetwork")
    for c in (container(controller, "controller"), container(pod_spec(objects, "DaemonSet", "multinet-node"),
                                                              "install-cni")):
        ctx = c["securityContext"]
        assert ctx["capabilities"]["drop"] == ["ALL"] and ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
    ipu = pod_spec(objects, "DaemonSet", "multinet-ipu")
    assert ipu["automountServiceAccountToken"] is False  # the target talks to no apiserver


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_probes_and_requests(rendered: dict[str, Objects], overlay: str) -> None:
    for kind, name, cname in LONG_RUNNING:
        c = container(pod_spec(rendered[overlay], kind, name), cname)
        assert c.get("readinessProbe") and c.get("livenessProbe"), (name, cname)
        # A slow start (every cache listing on a busy node) is not a failed liveness.
        assert c.get("startupProbe") and "initialDelaySeconds" not in c["livenessProbe"], (name, cname)
        requests = c["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory"), (name, cname)
        assert c["resources"]["limits"].get("memory"), (name, cname)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_software_target_skips_nodes_with_their_own_ipu(rendered: dict[str, Objects], overlay: str) -> None:
    agent = node_script("agent.py")
    ipu = pod_spec(rendered[overlay], "DaemonSet", "multinet-ipu")
    terms = ipu["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1  # terms are ORed: one term, so every expression holds
    assert {"key": agent.IPU_LABEL, "operator": "NotIn", "values": [agent.EXTERNAL]} in terms[0]["matchExpressions"]
    node = pod_spec(rendered[overlay], "DaemonSet", "multinet-node")
    assert "affinity" not in node and node["tolerations"] == [{"operator": "Exists"}]  # every node
    for spec in (node, ipu):
        assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "Default"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_host_dirs_are_mounted_at_their_own_paths(rendered: dict[str, Objects], overlay: str) -> None:
    """The installed launcher, the conflist's socket and the delegated plugins' paths are
    written or read inside the container and used on the node: the same path on both."""
    for workload, spec, c in containers(rendered[overlay]):
        host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        for mount in c.get("volumeMounts", []):
            if mount["name"] in host:
                assert mount["mountPath"] == host[mount["name"]], (workload, c["name"], mount)


def test_local_overlay_keeps_to_the_cluster_root(rendered: dict[str, Objects]) -> None:
    """On the local cluster every node shares this machine: nothing may land in its real CNI dirs."""
    allowed = (addon.LOCAL_NODE_ROOT, "/run/netns", "/usr/lib/cni")
    for workload, spec, c in containers(rendered["overlays/local"]):
        for volume in spec["volumes"]:
            if "hostPath" in volume:
                assert volume["hostPath"]["path"].startswith(allowed), (workload, volume)
        for value in [*env_of(c).values(), *c.get("args", []), *c.get("command", [])]:
            assert not any(p in value for p in ("/opt/cni", "/etc/cni", "/var/lib/cni")), (workload, value)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_installer_and_agent_agree_on_paths(rendered: dict[str, Objects], overlay: str) -> None:
    spec = pod_spec(rendered[overlay], "DaemonSet", "multinet-node")
    install, agent = env_of(container(spec, "install-cni")), env_of(container(spec, "agent"))
    for name in ("CNI_BIN_DIR", "CNI_CONF_DIR", "MULTINET_CNI_SOCKET"):
        assert install[name] == agent[name], name
    ipu = env_of(container(pod_spec(rendered[overlay], "DaemonSet", "multinet-ipu"), "ipu"))
    assert ipu["IPU_NETNS"] == agent["IPU_NETNS"]  # the target programs where the agent puts representors


def test_node_scripts_config_map_holds_the_files(rendered: dict[str, Objects]) -> None:
    maps = [o for o in rendered["base"] if o["kind"] == "ConfigMap"
            and o["metadata"]["name"].startswith("multinet-node-scripts")]
    assert len(maps) == 1
    for name in ("install-cni.py", "agent.py"):
        assert maps[0]["data"][name] == repo_path("deploy", "base", "node", name).read_text()


# --- the flags the manifests pass exist in the entry points -------------------------------

def _unknown(argv: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """The arguments `parser` (default: the `multinet` command) does not know."""
    parser = parser or build_parser()
    try:
        _, unknown = parser.parse_known_args(argv)
    except SystemExit:
        pytest.fail(f"{parser.prog} refuses {shlex.join(argv)}")
    return unknown


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_node_flags_exist(rendered: dict[str, Objects], overlay: str) -> None:
    spec = pod_spec(rendered[overlay], "DaemonSet", "multinet-node")
    install = container(spec, "install-cni")["command"]
    assert install[1] == "/opt/multinet-node/install-cni.py"
    assert _unknown(install[2:], node_script("install-cni.py").parser()) == []
    agent = container(spec, "agent")["command"]
    assert agent[1] == "/opt/multinet-node/agent.py"
    wrapper = node_script("agent.py").parser().parse_args(agent[2:])
    rest = wrapper.agent_args[1:]
    assert _unknown(["agent", "--node", "n", *rest, "--p4runtime", "127.0.0.1:9559"]) == []
    ipu = container(pod_spec(rendered[overlay], "DaemonSet", "multinet-ipu"), "ipu")["args"]
    assert ipu[0] == "ipu" and _unknown(ipu) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_flags_exist(rendered: dict[str, Objects], overlay: str) -> None:
    """Every flag the Deployment passes is one `multinet controller` takes."""
    args = container(pod_spec(rendered[overlay], "Deployment", "multinet-controller"), "controller")["args"]
    assert args[0] == "controller"
    assert _unknown(args) == []
    flags = {a.split("=", 1)[0] for a in args[1:]}
    assert {"--webhook-address", "--webhook-service", "--cert-secret", "--health-port", "--pod"} <= flags


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_admission_goes_to_the_leader_and_a_standby_is_ready(rendered: dict[str, Objects], overlay: str) -> None:
    """The webhook Service selects the pod the leader labels (`--pod` from the downward
    API); readiness is /healthz, which a standby answers while it waits for the lease."""
    from controller.leader_pod import LEADER_LABEL

    spec = pod_spec(rendered[overlay], "Deployment", "multinet-controller")
    controller = container(spec, "controller")
    assert "--pod=$(POD_NAMESPACE)/$(POD_NAME)" in controller["args"]
    fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in controller["env"] if "valueFrom" in e
              and "fieldRef" in e["valueFrom"]}
    assert (fields.get("POD_NAME"), fields.get("POD_NAMESPACE")) == ("metadata.name", "metadata.namespace")
    assert controller["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    service = find(rendered[overlay], "Service", "multinet-webhook")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "multinet-controller", LEADER_LABEL: "true"}
