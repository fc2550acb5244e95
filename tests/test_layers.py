"""The layers of STYLE.md, checked: what each part may import.

`podnetwork` (the API, no I/O) and `datapath` (the offload, knows nothing of
Kubernetes) are at the bottom; `controller` uses `podnetwork`; the node agent
in `cni` uses both; only adapter modules import `kubernetes` or `grpc`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("podnetwork", "controller", "cni", "datapath", "multinet")

# part -> top-level packages it must never import
FORBIDDEN = {
    "podnetwork": {"controller", "cni", "datapath", "multinet", "kubernetes", "kopf", "grpc", "pyroute2"},
    "datapath": {"controller", "cni", "multinet", "kubernetes", "kopf"},
    "controller": {"cni", "datapath", "pyroute2", "grpc"},
    "cni": {"controller", "multinet"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_part_respects_its_layer(part: str) -> None:
    violations = []
    for path in sorted((ROOT / part).rglob("*.py")):
        bad = imports(path) & FORBIDDEN[part]
        if bad:
            violations.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not violations, "\n".join(violations)


def test_cni_shim_uses_only_the_standard_library() -> None:
    """The plugin binary must start fast: no third-party import at module level."""
    import sys

    shim = ROOT / "cni" / "shim.py"
    if not shim.exists():
        pytest.skip("no cni/shim.py yet")
    third_party = {m for m in imports(shim) if m not in sys.stdlib_module_names and m != "cni"}
    assert not third_party, third_party
