"""Fixtures every conformance test may use (registered by the root conftest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from kubernetes import client, config

from suite.binding import Binding
from suite.connectivity import TableLog
from suite.kube import Clients, body, ignore_missing, ready_nodes, unique
from suite.networks import Networks
from suite.options import RunOptions
from suite.pods import NetRequest, plan
from suite.probes import ProbePods
from suite.transport import make as make_transport
from suite.verdicts import Rules

OPTIONS = pytest.StashKey[RunOptions]()
TABLES = pytest.StashKey[TableLog]()


@pytest.fixture(scope="session")
def run_options(pytestconfig: pytest.Config) -> RunOptions:
    return pytestconfig.stash[OPTIONS]


@pytest.fixture(scope="session")
def binding(run_options: RunOptions) -> Binding:
    assert run_options.binding is not None
    return run_options.binding


@pytest.fixture(scope="session")
def new_api(run_options: RunOptions) -> Callable[[], client.ApiClient]:
    if not run_options.kubeconfig:
        raise pytest.UsageError("--kubeconfig (or $KUBECONFIG) is required")
    base = client.Configuration()
    config.load_kube_config(
        config_file=str(run_options.kubeconfig), client_configuration=base)
    cast(Any, base).connection_pool_maxsize = 16  # truth tables probe several cells at once (absent from the stubs)

    def make() -> client.ApiClient:
        return client.ApiClient(base)
    return make


@pytest.fixture(scope="session")
def api(new_api: Callable[[], client.ApiClient]) -> client.ApiClient:
    return new_api()


@pytest.fixture(scope="session")
def clients(api: client.ApiClient) -> Clients:
    return Clients(api)


@pytest.fixture(scope="session")
def core(clients: Clients) -> client.CoreV1Api:
    return clients.core


@pytest.fixture(scope="session")
def custom(clients: Clients) -> client.CustomObjectsApi:
    return clients.custom


@pytest.fixture(scope="session")
def timeout(run_options: RunOptions) -> float:
    return run_options.converge_timeout


@pytest.fixture(scope="session")
def rules(run_options: RunOptions) -> Rules:
    return Rules(timeout=run_options.converge_timeout)


@pytest.fixture(scope="session")
def tables(pytestconfig: pytest.Config) -> TableLog:
    return pytestconfig.stash[TABLES]


class Namespaces:
    """Namespaces the suite makes, labelled as --namespace-labels asks, deleted afterwards."""

    def __init__(self, core: client.CoreV1Api, options: RunOptions) -> None:
        self.core = core
        self.options = options
        self.made: list[str] = []

    def create(self, prefix: str = "kep", labels: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        all_labels = {"kep-conformance": "true", **self.options.namespace_labels, **(labels or {})}
        self.core.create_namespace(body({"metadata": {"name": name, "labels": all_labels}}))
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        if self.options.cleanup:
            for name in self.made:
                ignore_missing(lambda: self.core.delete_namespace(name))
        self.made.clear()


@pytest.fixture(scope="session")
def params_namespace(core: client.CoreV1Api, run_options: RunOptions) -> Iterator[Callable[[], str]]:
    """A namespace for namespaced provider parameters, made on first use."""
    made = Namespaces(core, run_options)
    yield lambda: made.made[0] if made.made else made.create("kep-params")
    made.cleanup()


@pytest.fixture
def namespaces(core: client.CoreV1Api, run_options: RunOptions) -> Iterator[Namespaces]:
    made = Namespaces(core, run_options)
    yield made
    made.cleanup()


@pytest.fixture
def namespace(namespaces: Namespaces) -> str:
    return namespaces.create("kep-conformance")


def make_networks(custom: client.CustomObjectsApi, binding: Binding, options: RunOptions,
                  params_namespace: Callable[[], str]) -> Networks:
    return Networks(custom, binding, options.converge_timeout, options.cleanup, params_namespace)


@pytest.fixture
def networks(custom: client.CustomObjectsApi, binding: Binding, run_options: RunOptions,
             params_namespace: Callable[[], str]) -> Iterator[Networks]:
    made = make_networks(custom, binding, run_options, params_namespace)
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def two_nodes(api: client.ApiClient) -> list[str]:
    nodes = ready_nodes(client.CoreV1Api(api))
    if len(nodes) < 2:
        pytest.skip(f"needs two Ready schedulable nodes, the cluster has {len(nodes)}: {nodes}")
    return nodes[:2]


def make_probes(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
                options: RunOptions) -> ProbePods:
    return ProbePods(api, binding, make_transport(options.transport, api, new_api), options.probe_image,
                     options.pod_ready_timeout, inside=make_transport("exec", api, new_api))


@pytest.fixture
def probes(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
           run_options: RunOptions) -> Iterator[ProbePods]:
    made = make_probes(api, new_api, binding, run_options)
    yield made
    if run_options.cleanup:
        for pod in list(made.made):
            made.delete(pod)


class PodMaker:
    """Creates pods asking for networks the way the binding says."""

    def __init__(self, clients: Clients, binding: Binding) -> None:
        self.clients = clients
        self.binding = binding

    def create(self, namespace: str, name: str, networks: list[NetRequest] | str | None, *,
               dry_run: bool = False, core: client.CoreV1Api | None = None, **spec: Any) -> Any:
        made = plan(self.binding, name, networks, **spec)
        run = "All" if dry_run else None
        for claim in made.claims:
            group, version = claim["apiVersion"].split("/")
            self.clients.custom.create_namespaced_custom_object(group, version, namespace, "resourceclaims",
                                                                claim, dry_run=run)
        return (core or self.clients.core).create_namespaced_pod(namespace, body(made.body), dry_run=run)


@pytest.fixture(scope="session")
def pods(clients: Clients, binding: Binding) -> PodMaker:
    return PodMaker(clients, binding)


