"""The processes the fuzz tests reach, each started as production starts it.

- the CNI plugin, installed by `multinet install-cni` and exec'd per case;
- `multinet agent` on its unix socket, with its own records dir, host, IPU
  and pod network namespaces (all `fz-`) and a Node and pod in the apiserver;
- `multinet ipu` (the P4Runtime target) in an IPU namespace of its own;
- `multinet controller` serving the admission webhooks to the apiserver.

Counts of the cases run are printed at the end of the session and written to
build/fuzz-counts.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support import cni as testing
from tests.support.cni_fuzz import Pools, RecordsModel
from tests.support.fuzz import TALLY

PREFIX = "fz"  # of every namespace, link and Kubernetes object the fuzz tests make
REPO = Path(__file__).resolve().parents[2]
COUNTS = REPO / "build" / "fuzz-counts.json"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        TALLY.tests[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.outcomes:
        return
    terminalreporter.section("fuzz cases")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    TALLY.write(COUNTS)
    terminalreporter.write_line(f"counts written to {COUNTS.relative_to(REPO)}")


def multinet(*argv: str) -> str:
    """The `multinet` command of this environment, as an operator runs it."""
    command = Path(sys.executable).with_name("multinet")
    done = subprocess.run([str(command), *argv], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout


@pytest.fixture(scope="session")
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")


@pytest.fixture(scope="session")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim as `multinet install-cni` puts it into a runtime's CNI bin dir."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    installed = Path(multinet("install-cni", "--bin-dir", str(bin_dir)).strip())
    assert installed.parent == bin_dir and os.access(installed, os.X_OK)
    return installed


@pytest.fixture(scope="session")
def api(root: None, kubeconfig: Path) -> client.ApiClient:
    made: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))
    return made


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[str]:
    return testing.ensure_crds(api)


@dataclass
class LiveAgent:
    agent: testing.AgentProcess
    pools: Pools
    model: RecordsModel
    host: str
    ipu: str

    @property
    def socket(self) -> str:
        return str(self.agent.socket)

    def alive(self) -> bool:
        return self.agent.proc is not None and self.agent.proc.poll() is None

    def log(self) -> str:
        return self.agent.log.read_text(errors="replace")


@contextmanager
def live_agent(api: client.ApiClient, kubeconfig: Path, work: Path) -> Iterator[LiveAgent]:
    """An agent serving a routed eth0 from its own pod range, with a pod
    namespace per fuzz container and one real pod bound to its node."""
    objects = testing.ClusterObjects(api, PREFIX)
    netns = testing.Namespaces(PREFIX)
    agent = None
    try:
        namespace, node = objects.namespace(), objects.node()
        host, ipu = netns.new("host"), netns.new("ipu")
        pods = [f"/var/run/netns/{netns.new('pod')}" for _ in range(3)]
        uid = objects.pod(namespace, "fz-pod", node, None)
        agent = testing.AgentProcess(work, node, kubeconfig, ["--ipu-netns", ipu, "--host-netns", host,
                                                              "--link-prefix", PREFIX, "--pod-cidr", "10.244.93.0/24"])
        agent.start()
        pools = Pools(tuple(pods), ((namespace, "fz-pod", uid),), namespace)
        yield LiveAgent(agent, pools, RecordsModel(agent.state_dir, frozenset(pools.pods)), host, ipu)
    finally:
        if agent is not None:
            agent.stop()
        objects.close()
        netns.close()
