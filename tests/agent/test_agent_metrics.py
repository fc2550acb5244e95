"""The agent's `/metrics`, scraped over HTTP from the agent process while it
serves CNI requests through the plugin (prometheus_client's text format)."""

from __future__ import annotations

import secrets
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.conftest import emulated_node
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc

pytestmark = [pytest.mark.cluster, pytest.mark.netns]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def measured_node(api: client.ApiClient, crds: list[str], kubeconfig: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    port = free_port()
    with emulated_node(api, kubeconfig, tmp_path_factory.mktemp("agent"), "--pod-cidr", "10.244.78.0/24",
                       "--metrics-address", "127.0.0.1", "--metrics-port", str(port)) as n:
        yield n, f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items() if n == name and labels.items() <= dict(lbl).items())


def test_cni_verbs_are_counted_and_timed_as_they_are_served(measured_node: tuple[Node, str]) -> None:
    node, url = measured_node
    before = scrape(url)
    bare = node.objects.bare_network(f"{PREFIX}-m-{secrets.token_hex(2)}")
    pod_ns = node.netns.new("pod")
    pod = node.pod("measured", [alloc(bare, "net1", [])])
    container = f"ctr{secrets.token_hex(4)}"
    added = node.cni("ADD", pod_ns, pod, container)
    assert added.exit == 0
    assert node.cni("ADD", pod_ns, pod, container).exit != 0  # a second ADD of one attachment is refused
    assert node.cni("CHECK", pod_ns, pod, container, prevResult=added.out).exit == 0
    assert node.cni("DEL", pod_ns, pod, container).exit == 0
    after = scrape(url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("multinet_cni_requests_total", verb="ADD", result="ok") == 1
    assert grew("multinet_cni_requests_total", verb="ADD", result="error") == 1
    assert grew("multinet_cni_requests_total", verb="CHECK", result="ok") == 1
    assert grew("multinet_cni_requests_total", verb="DEL", result="ok") == 1
    assert grew("multinet_cni_request_seconds_count", verb="ADD") == 2
    assert grew("multinet_cni_request_seconds_sum", verb="ADD") > 0
    # The P4Runtime client's series are served beside them (this agent has no IPU target: none sent).
    assert ("multinet_p4runtime_write_seconds_count", ()) in after
