"""The node agent's unix socket with generated requests.

`multinet agent` runs as its own process; each case is one connection, as a
shim makes it or not: malformed and truncated frames, frames of the wrong
shape, valid frames with generated environments and configurations the shim
would have refused, written whole, in small slow pieces, or by a client
that goes away before the answer. After every case the agent still answers
a valid STATUS and VERSION, and its records directory holds exactly what its
answers made. Oversized frames and idle connections get their own cases.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from cni import spec
from tests.fuzz.conftest import LiveAgent, live_agent
from tests.support import cni_fuzz as gen
from tests.support.fuzz import TALLY

pytestmark = [pytest.mark.cluster, pytest.mark.netns]
TARGET = "agent socket"
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHANGES = ("ADD", "DEL", "GC")  # verbs whose outcome the model must see


@pytest.fixture(scope="module")
def agent(api: client.ApiClient, crds: list[str], kubeconfig: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    with live_agent(api, kubeconfig, tmp_path_factory.mktemp("socket-agent")) as live:
        yield live
        # A client going away, a bad frame: never an unhandled exception in the agent.
        log = live.log()
        assert "Exception occurred during processing" not in log and "request failed" not in log, log[-6000:]


def malformed() -> st.SearchStrategy[bytes]:
    """Frames that are not the shim's request: the agent answers 6, decoding failure."""
    request_like = st.fixed_dictionaries({}, optional={"env": gen.json_values, "stdin": gen.json_values})
    str_env = st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
    return st.one_of(
        st.binary(max_size=2000),
        gen.json_values.map(lambda v: json.dumps(v).encode()),
        request_like.filter(not_a_request).map(lambda d: json.dumps(d).encode()),
        st.tuples(str_env, st.text(max_size=50)).flatmap(
            lambda p: st.integers(0, len(gen.frame(*p)) - 1).map(lambda n: gen.frame(*p)[:n])),  # cut short
        st.sampled_from([b"", b"{", b"null", b'{"env": {}}', b'{"stdin": ""}', b'{"env": {"A": 1}, "stdin": ""}',
                         b"[" * 100000, b'{"env": {}, "stdin": "' + b"\xff" * 10 + b'"}']),
    )


def not_a_request(d: dict[str, Any]) -> bool:
    env, stdin = d.get("env"), d.get("stdin")
    return not (isinstance(env, dict) and isinstance(stdin, str) and all(isinstance(v, str) for v in env.values()))


def requests(pools: gen.Pools) -> st.SearchStrategy[tuple[dict[str, str], str]]:
    """Well-formed frames: the shim's shape, any content."""
    configs = st.one_of(gen.sensible_configs(), gen.configs()).map(json.dumps)
    anything = st.one_of(configs, st.text(max_size=100))
    return st.one_of(st.tuples(pools.sensible_env(), configs), st.tuples(pools.sensible_env(), configs),
                     st.tuples(pools.env(), anything))


def cases(pools: gen.Pools) -> st.SearchStrategy[tuple[Any, gen.Delivery]]:
    return st.tuples(st.one_of(malformed(), requests(pools)), gen.deliveries)


def reply_of(raw: bytes) -> tuple[int, Any]:
    doc = json.loads(raw)
    assert isinstance(doc, dict) and set(doc) == {"exit", "stdout"} and isinstance(doc["exit"], int), doc
    return doc["exit"], doc["stdout"]


def test_generated_requests(agent: LiveAgent) -> None:
    @SETTINGS
    @given(case=cases(agent.pools))
    def one(case: tuple[Any, gen.Delivery]) -> None:
        request, how = case
        valid = isinstance(request, tuple)
        command = request[0].get("CNI_COMMAND", "") if valid else ""
        if how.close_early and command in CHANGES:
            how = gen.Delivery()  # the model must see what an ADD, DEL or GC did
        raw = gen.frame(*request) if valid else request
        answer = gen.exchange(agent.socket, raw, how)
        outcome = "no reply read"
        if answer is not None:
            code, out = reply_of(answer)
            outcome = f"exit {code}" + (f" code {out.get('code')}" if code and isinstance(out, dict) else "")
            if not valid:
                assert code == 1 and out["code"] == spec.Code.DECODING_FAILURE and out["msg"], out
            else:
                problems = gen.check_answer(code, out, command)
                problems += agent.model.observe(request[0], request[1].encode(), code)
                assert not problems, (problems, out)
        TALLY.count(TARGET, f"{'request ' + command[:8] if valid else 'malformed'} {how}: {outcome}")
        assert agent.alive(), agent.log()[-4000:]
        problems = gen.still_answering(agent.socket) + agent.model.check()
        assert not problems, problems

    one()


@pytest.mark.parametrize("size", [1 << 20, 8 << 20, 16 << 20])
@pytest.mark.parametrize("kind", ["garbage", "huge-config", "huge-env"])
def test_oversized_frames(agent: LiveAgent, kind: str, size: int) -> None:
    """A frame far larger than any runtime sends is answered like a small
    one, and the agent goes on answering."""
    if kind == "garbage":
        raw = b"\x00{[" * (size // 3)
    elif kind == "huge-config":
        raw = gen.frame({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "fzbig", "CNI_NETNS": agent.pools.netns[0],
                         "CNI_IFNAME": "eth0"}, json.dumps({"cniVersion": "1.1.0", "name": "x" * size}))
    else:
        raw = gen.frame({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "fzbig", "CNI_NETNS": agent.pools.netns[0],
                         "CNI_IFNAME": "eth0", "CNI_ARGS": f"K8S_POD_NAMESPACE={agent.pools.namespace};"
                                                           "K8S_POD_NAME=" + "p" * size},
                        json.dumps({"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni"}))
    answer = gen.exchange(agent.socket, raw, gen.Delivery(chunk=1 << 16))
    assert answer is not None
    code, out = reply_of(answer)
    TALLY.count(TARGET, f"oversized {kind}: exit {code}" + (f" code {out.get('code')}" if code else ""))
    assert code == 1 and not gen.check_answer(code, out, "ADD"), str(out)[:500]
    problems = gen.still_answering(agent.socket) + agent.model.check()
    assert not problems, problems


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_idle_and_half_sent_connections_do_not_stop_the_others(agent: LiveAgent) -> None:
    """Clients that connect and stall (nothing sent, or half a frame, never
    half-closed) hold a connection each; the agent answers everyone else, and
    answers the stalled ones when they give up."""
    stalled = []
    try:
        for i in range(24):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(agent.socket)
            if i % 2:
                sock.sendall(gen.STATUS[: len(gen.STATUS) // 2])
            stalled.append(sock)
        problems = gen.still_answering(agent.socket)
        TALLY.count(TARGET, "valid requests while 24 clients stall")
        assert not problems, problems
        for sock in stalled:
            sock.shutdown(socket.SHUT_WR)
            code, out = reply_of(read_all(sock))
            TALLY.count(TARGET, f"stalled client gives up: exit {code} code {out['code']}")
            assert code == 1 and out["code"] == spec.Code.DECODING_FAILURE, out
    finally:
        for sock in stalled:
            sock.close()
    assert not gen.still_answering(agent.socket)
