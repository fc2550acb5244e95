"""The test-only fault catalogue: parsing, refusal of unknown names, and that
each switch has exactly one call site in the shipped packages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from podnetwork import faults

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("podnetwork", "kube", "datapath", "controller", "agent", "cni", "multinet")


def test_unset_or_blank_is_no_fault() -> None:
    assert faults.parse("") == frozenset()
    assert faults.parse(" , ,") == frozenset()
    assert faults.from_env({}) == frozenset()


def test_names_are_split_on_commas_and_trimmed() -> None:
    got = faults.parse(" cross-node-drop,duplicate-address ,cross-node-drop")
    assert got == {"cross-node-drop", "duplicate-address"}
    assert faults.from_env({faults.ENV: "egress-policy-ignored"}) == {"egress-policy-ignored"}


def test_unknown_names_are_refused_each_named() -> None:
    with pytest.raises(faults.FaultError) as err:
        faults.parse("duplicate-address,no-such-fault,Cross-Node-Drop")
    message = str(err.value)
    assert faults.ENV in message
    assert "no-such-fault" in message and "Cross-Node-Drop" in message
    assert "duplicate-address," not in message.split("known:")[0]  # a known name is not blamed


def test_on_follows_the_active_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not faults.on("cross-node-drop")  # the test run itself sets no fault
    monkeypatch.setattr(faults, "ACTIVE", frozenset({"cross-node-drop"}))
    assert faults.on("cross-node-drop") and not faults.on("duplicate-address")


def test_catalogue_covers_controller_agent_and_ipu() -> None:
    parts = {part for part, _ in faults.CATALOGUE.values()}
    assert {"controller", "agent", "ipu"} <= parts
    assert len(faults.CATALOGUE) >= 12


def _run(value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, faults.ENV: value}
    return subprocess.run([sys.executable, "-c", "from podnetwork import faults; print(sorted(faults.ACTIVE))"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_process_reads_the_variable_at_start() -> None:
    done = _run("service-single-backend")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['service-single-backend']"


def test_a_process_with_an_unknown_fault_refuses_to_start() -> None:
    done = _run("service-single-backend,typo-fault")
    assert done.returncode != 0
    assert "FaultError" in done.stderr and "typo-fault" in done.stderr


def _call_sites() -> dict[str, list[str]]:
    """fault name -> every `faults.on("name")` in the shipped packages (file:line)."""
    sites: dict[str, list[str]] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "on"
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "faults"):
                    arg = node.args[0]
                    name = arg.value if isinstance(arg, ast.Constant) else "<not a literal>"
                    sites.setdefault(str(name), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return sites


def test_every_fault_has_exactly_one_call_site_and_every_site_is_catalogued() -> None:
    sites = _call_sites()
    assert sorted(set(sites) - faults.CATALOGUE.keys()) == []
    assert sorted(set(faults.CATALOGUE) - set(sites)) == []
    assert {name: where for name, where in sites.items() if len(where) != 1} == {}
