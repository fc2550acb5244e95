"""Fixtures of the agent's tests: the real apiserver, real namespaces, a real agent process."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from cni import testing

PREFIX = testing.TEST_PREFIX
Node = testing.Node


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[str]:
    # TEMPORARY stand-ins until the API package's CRDs are installed on main.
    return testing.ensure_crds(api)


@pytest.fixture(scope="module")
def node(api: client.ApiClient, crds: list[str], kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")
    objects = testing.ClusterObjects(api, PREFIX)
    netns = testing.Namespaces(PREFIX)
    agent = None
    try:
        namespace = objects.namespace()
        node_name = objects.node()
        host, ipu = netns.new("host"), netns.new("ipu")
        # The macvlan uplink: a veth end in the host namespace (no dummy links here).
        uplink = f"{PREFIX}up{secrets.token_hex(2)}"
        testing.run("ip", "-n", host, "link", "add", uplink, "type", "veth", "peer", "name", uplink + "p")
        testing.run("ip", "-n", host, "link", "set", uplink, "up")
        work = tmp_path_factory.mktemp("agent")
        agent = testing.AgentProcess(work, node_name, kubeconfig, [
            "--ipu-netns", ipu, "--host-netns", host, "--link-prefix", PREFIX, "--pod-cidr", "10.244.77.0/24",
        ])
        agent.start()
        yield testing.Node(node_name, namespace, host, ipu, uplink, agent, objects, netns, kubeconfig)
    finally:
        if agent is not None:
            agent.stop()
        objects.close()
        netns.close()
