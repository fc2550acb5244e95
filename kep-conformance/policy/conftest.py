"""The netpol model, built once for both policy modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from suite.binding import Binding
from suite.kube import ready_nodes
from suite.netpol import Model, model
from suite.options import RunOptions


@pytest.fixture(scope="session")
def netpol(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
           run_options: RunOptions, params_namespace: Callable[[], str]) -> Iterator[Model]:
    nodes = ready_nodes(client.CoreV1Api(api))
    if len(nodes) < 2:
        pytest.skip(f"needs two Ready schedulable nodes, the cluster has {len(nodes)}: {nodes}")
    with model(api, new_api, binding, run_options, params_namespace, nodes[:2]) as m:
        yield m


@pytest.fixture
def m(netpol: Model) -> Iterator[Model]:
    yield netpol
    netpol.reset()
