"""KEP-3698 conformance: options, fixtures, feature skips and the report.

Run against any cluster:

    pytest -c kep-conformance/pytest.ini kep-conformance \\
        --kubeconfig ~/.kube/config \\
        --implementation kep-conformance/implementations/multinet.yaml \\
        --report report.yaml
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

import report as report_mod
from features import FEATURES, GROUP, VERSION, Support

OUTCOMES = report_mod.Outcomes()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kep-conformance")
    group.addoption("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                    help="kubeconfig of the cluster under test (default: $KUBECONFIG)")
    group.addoption("--implementation", type=Path,
                    help="YAML describing the implementation: organization, project, version, "
                    "provider, a parameters template and its supported Extended features")
    group.addoption("--supported-features", default="",
                    help="comma-separated Extended features to run, added to the implementation file's")
    group.addoption("--report", type=Path, help="write the YAML conformance report here")
    group.addoption("--converge-timeout", type=float, default=60.0,
                    help="seconds to wait for the implementation to converge (default 60)")


def _implementation(cfg: pytest.Config) -> dict[str, Any]:
    path = cfg.getoption("--implementation")
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise pytest.UsageError(f"--implementation {path}: expected a YAML mapping")
    return data


def _supported(cfg: pytest.Config) -> set[str]:
    declared = set(_implementation(cfg).get("supportedFeatures") or [])
    declared |= {f.strip() for f in cfg.getoption("--supported-features").split(",") if f.strip()}
    unknown = declared - set(FEATURES)
    if unknown:
        raise pytest.UsageError(f"--supported-features: unknown feature(s) {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(sorted(FEATURES))}")
    return declared


def _feature(item: pytest.Item) -> str:
    marker = item.get_closest_marker("feature")
    if marker is None:
        raise pytest.UsageError(f"{item.nodeid}: every conformance test needs @pytest.mark.feature(...)")
    return str(marker.args[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    supported = _supported(config)
    for item in items:
        feature = FEATURES[_feature(item)]
        if feature.support is Support.EXTENDED and feature.name not in supported:
            item.add_marker(pytest.mark.skip(
                reason=f"Extended feature {feature.name} is not declared supported by the implementation"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    item_feature = getattr(report, "feature", None)
    if item_feature is None:
        return
    outcome = {"passed": "Passed", "failed": "Failed", "skipped": "Skipped"}[report.outcome]
    if report.when == "call" or outcome != "Passed":
        OUTCOMES.add(item_feature, report.nodeid, outcome)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    outcome.get_result().feature = _feature(item)  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--report")
    if not path:
        return
    kubeconfig = session.config.getoption("--kubeconfig")
    server = config.new_client_from_config(str(kubeconfig)).configuration.host if kubeconfig else "unknown"
    built = report_mod.build(OUTCOMES, _implementation(session.config), _supported(session.config), server)
    Path(path).write_text(report_mod.dump(built))


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def api(pytestconfig: pytest.Config) -> client.ApiClient:
    path = pytestconfig.getoption("--kubeconfig")
    if not path:
        raise pytest.UsageError("--kubeconfig (or $KUBECONFIG) is required")
    return config.new_client_from_config(str(path))


@pytest.fixture(scope="session")
def implementation(pytestconfig: pytest.Config) -> dict[str, Any]:
    return _implementation(pytestconfig)


@pytest.fixture(scope="session")
def timeout(pytestconfig: pytest.Config) -> float:
    return float(pytestconfig.getoption("--converge-timeout"))


@pytest.fixture(scope="session")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def absent(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = unique("kep-conformance")
    core.create_namespace({"metadata": {"name": name, "labels": {"kep-conformance": "true"}}})
    yield name
    core.delete_namespace(name)


class Networks:
    """Creates PodNetworks (with the implementation's parameters) and removes them afterwards."""

    def __init__(self, custom: client.CustomObjectsApi, implementation: dict[str, Any], timeout: float) -> None:
        self.custom = custom
        self.impl = implementation
        self.timeout = timeout
        self.made: list[tuple[str, str, str, str, str | None]] = []  # group, version, plural, name, namespace

    def params(self, index: int = 0) -> list[dict[str, str]]:
        """parametersRefs to a fresh parameters object made from the implementation's template."""
        templates = self.impl.get("parameters") or []
        if not templates:
            return []
        template = templates[index % len(templates)]
        body = {k: v for k, v in template.items() if k != "plural"}
        name = unique("kep-params")
        body["metadata"] = {"name": name}
        group, version = body["apiVersion"].split("/")
        self.custom.create_cluster_custom_object(group, version, template["plural"], body)
        self.made.append((group, version, template["plural"], name, None))
        return [{"group": group, "kind": body["kind"], "name": name}]

    def create(self, name: str | None = None, *, params: list[dict[str, str]] | None = None,
               enabled: bool | None = None, index: int = 0) -> dict[str, Any]:
        spec: dict[str, Any] = {"provider": self.impl.get("provider", "kep-conformance.example")}
        refs = self.params(index) if params is None else params
        if refs:
            spec["parametersRefs"] = refs
        if enabled is not None:
            spec["enabled"] = enabled
        name = name or unique("kep-net")
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetwork", "metadata": {"name": name}, "spec": spec}
        created: dict[str, Any] = self.custom.create_cluster_custom_object(GROUP, VERSION, "podnetworks", body)
        self.made.append((GROUP, VERSION, "podnetworks", name, None))
        return created

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_cluster_custom_object(GROUP, VERSION, "podnetworks", name)
        return obj

    def ready(self, name: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(name)
            c = condition(obj, "Ready")
            return obj if c and c["status"] == "True" else None
        result: dict[str, Any] = wait_for(check, self.timeout, f"PodNetwork {name} Ready")
        return result

    def cleanup(self) -> None:
        for group, version, plural, name, ns in reversed(self.made):
            try:
                if ns:
                    self.custom.delete_namespaced_custom_object(group, version, ns, plural, name)
                else:
                    self.custom.delete_cluster_custom_object(group, version, plural, name)
            except ApiException as err:
                if err.status != 404:
                    raise


@pytest.fixture
def networks(custom: client.CustomObjectsApi, implementation: dict[str, Any], timeout: float) -> Iterator[Networks]:
    made = Networks(custom, implementation, timeout)
    yield made
    made.cleanup()
