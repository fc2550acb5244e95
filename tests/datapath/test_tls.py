"""P4Runtime over TLS: `multinet ipu` run as a process with certificates of
a cluster CA; a client that verifies it and presents its own certificate
gets a session, every other client gets none, and bad flags are refused by
name."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from datapath.client.p4rt import INSERT, P4RuntimeClient
from datapath.tls import ClientTls
from kube import pki
from tests.datapath.conftest import PREFIX, Env, free_port, netns
from tests.datapath.test_p4runtime import route
from tests.support.testbed import Target, start_target
from tests.support.wait import wait_for


def tls_target(env: Env, certs: Path) -> Target:
    ca = pki.ensure_ca(certs, "p4rt-ca")
    server = pki.issue(ca, certs, "ipu", "multinet-ipu", server_names=("127.0.0.1",), client=False)
    node = env.testbed.add_node("n1")
    target = start_target(node, free_port(), PREFIX, str(env.logs / "n1.log"), sys.executable,
                          extra=("--tls-cert", str(server.cert), "--tls-key", str(server.key),
                                 "--tls-client-ca", str(ca.cert)))
    env.targets["n1"] = target
    return target


_ROUTES = itertools.count(1)  # each session writes a route of its own


def session(address: str, credentials: grpc.ChannelCredentials | None) -> bool:
    """Whether a client gets a P4Runtime session (arbitration and a write) with these credentials."""
    client = P4RuntimeClient(address, credentials=credentials)
    try:
        client.connect(timeout=5)
        client.set_pipeline()
        mine = route(next(_ROUTES))
        client.write([(INSERT, mine)])
        return mine in client.read()
    except (grpc.FutureTimeoutError, grpc.RpcError):
        return False
    finally:
        client.close()


@netns
def test_only_a_client_with_a_certificate_of_the_cluster_ca_gets_a_session(env: Env, tmp_path: Path) -> None:
    certs = tmp_path / "pki"
    target = tls_target(env, certs)
    ca = pki.ensure_ca(certs, "p4rt-ca")
    agent = pki.issue(ca, certs, "agent", "system:node:n1")
    other_ca = pki.ensure_ca(tmp_path / "other", "ca")
    stranger = pki.issue(other_ca, tmp_path / "other", "stranger", "system:node:n1")
    good = ClientTls(ca.cert, agent.cert, agent.key)
    wait_for("a session of the client holding a certificate", lambda: session(target.address, good.credentials()),
             timeout=120)  # the target starts meanwhile
    assert not session(target.address, None), "a plaintext client got a session"
    assert not session(target.address, ClientTls(ca.cert).credentials()), "a client without a certificate did"
    assert not session(target.address, ClientTls(ca.cert, stranger.cert, stranger.key).credentials()), \
        "a client certificate of another CA was accepted"
    # The client verifies the target too: one whose CA it does not trust is refused.
    assert not session(target.address, ClientTls(other_ca.cert, stranger.cert, stranger.key).credentials())
    assert session(target.address, good.credentials())  # positive control after the refusals


@pytest.mark.parametrize(("flags", "named"), [
    (["--tls-cert", "c.pem"], "--tls-key"),
    (["--tls-key", "k.pem"], "--tls-cert"),
    (["--tls-client-ca", "ca.pem"], "--tls-cert"),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], "/nonexistent/c.pem"),
])
@netns
def test_bad_tls_flags_are_refused_by_name(env: Env, flags: list[str], named: str) -> None:
    node = env.testbed.add_node("n1")
    proc = subprocess.run([sys.executable, "-m", "multinet.cli", "ipu", "--netns", node.ipu_ns, "--port",
                           str(free_port()), "--prefix", PREFIX, *flags], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
