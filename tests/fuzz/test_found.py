"""What the fuzzing found, kept as fixed cases against the running processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finsy.proto import p4r, rpc_code

from cni import spec
from tests.fuzz.conftest import LiveAgent, live_agent
from podnetwork.names import NETWORKS_ANNOTATION
from tests.fuzz.test_ipu import Session, session  # noqa: F401  (the target as a fixture)
from tests.fuzz.test_webhook import controller, namespace  # noqa: F401  (the webhook's controller)
from tests.support import cni_fuzz as gen
from tests.support import p4_fuzz
from tests.support.p4_model import batch_status, flaw
from tests.fuzz.test_shim_process import run

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


@pytest.fixture(scope="module")
def agent(api: client.ApiClient, crds: list[str], kubeconfig: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    with live_agent(api, kubeconfig, tmp_path_factory.mktemp("found-agent")) as live:
        yield live


def add(plugin: Path, live: LiveAgent, network: str, container: str, netns: str, ifname: str = "net9") -> int:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_PATH": "/opt/cni/bin", "MULTINET_CNI_SOCKET": live.socket}
    stdin = json.dumps({"cniVersion": "1.1.0", "name": network, "type": "multinet-cni"}).encode()
    code, out, stderr = run(plugin, env, stdin)
    assert "Traceback" not in stderr
    live.model.observe(env, stdin, code)
    return code


@pytest.mark.parametrize("same_netns", [True, False], ids=["same-netns", "other-netns"])
def test_another_network_cannot_take_an_attached_ifname(plugin: Path, agent: LiveAgent, same_netns: bool) -> None:
    """A second network's ADD of a container's CNI_IFNAME fails, and its
    rollback once deleted the first network's links (they are named by
    container and interface alone): the first attachment lost its interface
    while its record stayed."""
    first, second = agent.pools.netns[:2]
    container, ifname = ("fzsame", "net8") if same_netns else ("fzother", "net7")
    assert add(plugin, agent, "multinet", container, first, ifname) == 0
    assert add(plugin, agent, "fzalt", container, first if same_netns else second, ifname) == 1
    assert not agent.model.check(), agent.model.check()


@pytest.mark.parametrize("namespace,name", [("{ns}", ".."), ("{ns}", "."), ("..", "fz-pod")])
def test_cni_args_naming_a_path_segment_is_no_pod(plugin: Path, agent: LiveAgent, api: client.ApiClient,
                                                  namespace: str, name: str) -> None:
    """K8S_POD_NAME=".." once made the agent GET .../pods/.., which the
    apiserver answers with the Namespace: the ADD succeeded for a pod that does
    not exist, and the pod's network-status and readiness condition were
    patched onto the Namespace object."""
    ns = agent.pools.namespace
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "fzdots", "CNI_NETNS": agent.pools.netns[2],
           "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "MULTINET_CNI_SOCKET": agent.socket,
           "CNI_ARGS": f"K8S_POD_NAMESPACE={namespace.format(ns=ns)};K8S_POD_NAME={name}"}
    stdin = json.dumps({"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni"}).encode()
    code, out, stderr = run(plugin, env, stdin)
    assert code == 1 and out["code"] == 11, out  # as for any pod the agent cannot find: try again later
    assert "'.'" in out["msg"] or "'..'" in out["msg"], out
    assert not agent.model.observe(env, stdin, code) and not agent.model.check()
    meta = client.CoreV1Api(api).read_namespace(ns).metadata
    annotations = (meta.annotations if meta else None) or {}
    assert not [k for k in annotations if "network-status" in k], annotations


def test_resource_paths_refuse_dot_segments() -> None:
    from kube.errors import BadRequest
    from kube.resources import PODS

    assert PODS.path("default", "a.b") == "/api/v1/namespaces/default/pods/a.b"
    for namespace, name in (("default", ".."), ("default", "."), ("..", "x"), (".", None)):
        with pytest.raises(BadRequest, match="may not be"):
            PODS.path(namespace, name)


@pytest.mark.parametrize("raw", [
    b"[" * 100000,  # cut short
    b'{"env": {}, "stdin": "", "x": ' + b"[" * 50000 + b"]" * 50000 + b"}",  # whole and valid JSON
    b'{"env": {}, "stdin": ' + b"[" * 50000])
def test_a_deeply_nested_frame_is_answered(agent: LiveAgent, raw: bytes) -> None:
    """json.loads raises RecursionError (not a ValueError) on deep nesting: the
    agent's handler died without an answer, leaving a traceback in its log."""
    answer = json.loads(gen.exchange(agent.socket, raw) or b"null")
    assert answer["exit"] == 1 and answer["stdout"]["code"] == spec.Code.DECODING_FAILURE, answer
    assert not gen.still_answering(agent.socket)
    assert "Traceback" not in agent.log()


def test_a_client_leaving_before_the_answer_is_no_error(agent: LiveAgent) -> None:
    """A shim killed by its runtime's timeout closes the socket first: the
    answer's write raised BrokenPipeError in the handler, and socketserver put
    a traceback into the agent's log for an ordinary event."""
    before = len(agent.log())  # the agent is shared: judge only what these clients caused
    for raw in (gen.STATUS, b"{not json", gen.VERSION):
        assert gen.exchange(agent.socket, raw, gen.Delivery(close_early=True)) is None
    assert not gen.still_answering(agent.socket)
    assert gen.wait_log(agent, "client left before the answer") and "Traceback" not in agent.log()[before:]


def test_batch_errors_carry_the_status_message_in_their_details(session: Session) -> None:
    """P4Runtime 12: the google.rpc.Status in the details has the status's own
    code and message. The target put "some updates failed" there and
    "1 of 2 updates failed" in the status, which grpcio-status's from_call
    refuses: a standard client could not read which update failed."""
    info = session.info
    route = p4_fuzz.Entry(info.by_name["route"].preamble.id, ((1, ("exact", 1)), (2, ("lpm", 0x0A090000, 16))), 0,
                      ("direct", info.action_ids["drop"], ()))
    err = session.write([flaw(info, route, p4_fuzz.INSERT, None, None).update,  # type: ignore[arg-type]
                         flaw(info, route, p4_fuzz.INSERT, None, None).update])  # type: ignore[arg-type]
    codes, problems = batch_status(err, 2)
    assert codes == [rpc_code.OK, rpc_code.ALREADY_EXISTS] and not problems, problems
    entity = p4r.Entity()
    entity.table_entry.table_id = 99
    _, err = session.read([entity])
    codes, problems = batch_status(err, 1)
    assert codes == [rpc_code.NOT_FOUND] and not problems, problems


def test_a_route_the_kernel_refuses_holds_no_network(session: Session) -> None:
    """A route through a port that is down fails in the kernel (ENETDOWN), after
    the route realizer took its network's reference: the network's tunnel
    device, rule and map elements stayed for good, with no entry holding them."""
    from tests.fuzz.test_ipu import A
    from tests.support.p4_model import leftovers

    assert session.set_pipeline(A.VERIFY_AND_COMMIT, session.p4info) is None  # empty tables
    info = session.info
    route = p4_fuzz.Entry(info.by_name["route"].preamble.id, ((1, ("exact", 5)), (2, ("lpm", 0x0A050000, 16))), 0,
                          ("direct", info.action_ids["to_port"], ((1, "fzp2"),)))
    codes, _ = batch_status(session.write([flaw(info, route, p4_fuzz.INSERT, None, None).update]), 1)  # type: ignore[arg-type]
    assert codes is not None and codes[0] != rpc_code.OK
    assert not leftovers(session.netns), leftovers(session.netns)


@pytest.mark.parametrize("depth", [2000, 100000])
def test_a_deeply_nested_networks_annotation_is_a_422(controller: Any, api: client.ApiClient, namespace: str,
                                                      depth: int) -> None:
    """json.loads raises RecursionError on deep nesting: the webhook's handler
    failed and the apiserver answered the pod's creation with a 500."""
    from kubernetes.client.exceptions import ApiException

    from tests.fuzz.test_webhook import pod, refusal

    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod("fz-deep", "[" * depth + "]" * depth),  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
                                                    dry_run="All", _request_timeout=30)
    status, message = refusal(caught.value)
    assert status == 422 and f"annotation {NETWORKS_ANNOTATION}: invalid JSON" in message, (status, message[:300])
