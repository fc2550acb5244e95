"""The kep-conformance pytest plugin: flags, selection, the ledger, the report.

Run it whole (`kep-conformance/kep-conformance --kubeconfig K --implementation
kep-conformance/implementations/multinet.yaml --report-output R`); choose tests
with --conformance-profiles, --run-test, --skip-tests (or -k), never by path,
so that every test of the selected profiles is in the statistics.
"""

from __future__ import annotations

from typing import Any, cast

from pathlib import Path

import pytest

# Before the suite's modules are imported, so their asserts explain themselves.
pytest.register_assert_rewrite("suite")

from kubernetes import config as kube_config  # noqa: E402

from suite import junit, report  # noqa: E402
from suite.binding import BindingError, load  # noqa: E402
from suite.connectivity import TableLog  # noqa: E402
from suite.fixtures import OPTIONS, TABLES  # noqa: E402
from suite.ledger import Ledger  # noqa: E402
from suite.options import add, read  # noqa: E402
from suite.profiles import PROFILES  # noqa: E402
from suite.selection import Kind, TestInfo, check_names, decide  # noqa: E402

pytest_plugins = ["suite.fixtures"]

ROOT = Path(__file__).resolve().parent
LEDGER = pytest.StashKey[Ledger]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser)


def pytest_sessionstart(session: pytest.Session) -> None:
    cfg = session.config
    path = cfg.getoption("--implementation")
    if path is None:
        raise pytest.UsageError("--implementation OPTIONS.yaml is required (see kep-conformance/implementations/)")
    try:
        binding = load(Path(path))
    except BindingError as err:
        raise pytest.UsageError(f"--implementation: {err}") from err
    cfg.stash[OPTIONS] = read(cfg, binding)
    cfg.stash[TABLES] = TableLog()
    cfg.stash[LEDGER] = Ledger()
    cfg.pluginmanager.register(Recorder(cfg.stash[LEDGER]), "kep-conformance-recorder")


def _whole_suite(cfg: pytest.Config) -> None:
    for arg in cfg.args:
        target = (cfg.invocation_params.dir / arg.split("::")[0]).resolve()
        if target != ROOT or "::" in arg:
            raise pytest.UsageError(
                f"run the whole suite ({ROOT}), not {arg!r}: choose tests with --run-test, --skip-tests, "
                "--conformance-profiles or -k, so the report counts every test of the selected profiles")


def info(item: pytest.Item) -> TestInfo:
    marker = item.get_closest_marker("feature")
    if marker is None:
        raise pytest.UsageError(f"{item.nodeid}: every conformance test needs @pytest.mark.feature(...)")
    name = getattr(item, "originalname", None) or item.name
    try:
        return TestInfo(name=name, features=tuple(str(a) for a in marker.args),
                        provisional=item.get_closest_marker("provisional") is not None,
                        disruptive=item.get_closest_marker("disruptive") is not None,
                        where=str(item.path.relative_to(ROOT)))
    except ValueError as err:
        raise pytest.UsageError(f"{item.nodeid}: {err}") from err


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    _whole_suite(config)
    sel = config.stash[OPTIONS].selection
    ledger = config.stash[LEDGER]
    for item in items:
        test = info(item)
        decision = decide(test, sel)
        try:
            ledger.enter(test, item.nodeid, decision)
        except ValueError as err:
            raise pytest.UsageError(str(err)) from err
        if decision.kind is not Kind.RUN:
            item.add_marker(pytest.mark.skip(reason=decision.reason))
    try:
        check_names(sel, ledger.tests)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from err


def _reason(rep: pytest.TestReport) -> str:
    if rep.skipped and isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    return rep.longreprtext[-4000:] if rep.failed else ""


class Recorder:
    """Feeds pytest's reports and deselections into the session's ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.ledger.deselect(item.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ledger.record(report.nodeid, report.when, report.outcome, _reason(report))


def _cluster(kubeconfig: str | None) -> str:
    if not kubeconfig:
        return "unknown"
    try:
        api = kube_config.new_client_from_config(str(kubeconfig))
        return str(cast(Any, api).configuration.host)
    except Exception as err:  # a report must still be written when the kubeconfig is unusable
        return f"unknown ({err})"


def pytest_sessionfinish(session: pytest.Session) -> None:
    cfg = session.config
    if OPTIONS not in cfg.stash or LEDGER not in cfg.stash:
        return
    opts, ledger = cfg.stash[OPTIONS], cfg.stash[LEDGER]
    if opts.report is None or opts.binding is None:
        return
    run = report.RunInfo(implementation=opts.binding.implementation, api_binding=opts.binding.summary(),
                         mode=opts.mode, profiles=tuple(sorted(opts.selection.profiles)),
                         supported=opts.selection.supported, cluster=_cluster(opts.kubeconfig))
    opts.report.parent.mkdir(parents=True, exist_ok=True)
    opts.report.write_text(report.dump(report.build(ledger, run)))
    if opts.junit:
        opts.junit.write_text(junit.dump(junit.build(ledger, run.profiles)))
    if opts.tables:
        opts.tables.write_text(cfg.stash[TABLES].text() or "no truth table was evaluated in this run\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if OPTIONS not in config.stash or LEDGER not in config.stash or config.stash[OPTIONS].binding is None:
        return
    opts, ledger = config.stash[OPTIONS], config.stash[LEDGER]
    terminalreporter.section("kep-conformance")
    for profile in (p for p in PROFILES if p in opts.selection.profiles):
        terminalreporter.line(f"{profile}: {report.profile_report(ledger, profile, opts.selection.supported)['summary']}")
    if opts.report:
        terminalreporter.line(f"report: {opts.report}  junit: {opts.junit}  truth tables: {opts.tables}")
