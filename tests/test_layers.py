"""What the import-linter contracts in pyproject.toml cannot say.

The layers themselves (docs/architecture.md) are import-linter contracts that
hack/test runs (`lint-imports`). Two rules are not about the import graph of
one package tree, so they are checked here from the source:

- the CNI plugin (`cni/`, the whole folder) imports the standard library only:
  a runtime execs it for every verb, and it must start without the agent's
  dependencies installed;
- `kep-conformance/` is standalone: it runs against any implementation and
  imports nothing of multinet;
- no module of the shipped packages grows past 400 lines (STYLE.md: split by
  concern before it grows).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = {"multinet", "controller", "agent", "datapath", "kube", "podnetwork", "cni"}


def imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_cni_plugin_uses_only_the_standard_library() -> None:
    violations = [
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}"
        for path in sorted((ROOT / "cni").rglob("*.py"))
        if (bad := {m for m in imports(path) if m not in sys.stdlib_module_names and m != "cni"})
    ]
    assert not violations, "\n".join(violations)


def test_kep_conformance_imports_nothing_of_multinet() -> None:
    suite = ROOT / "kep-conformance"
    own = {p.stem for p in suite.glob("*.py")} | {p.name for p in suite.iterdir() if p.is_dir()}
    violations = [
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}"
        for path in sorted(suite.rglob("*.py"))
        if (bad := (imports(path) & PROJECT_PACKAGES) - own)
    ]
    assert not violations, "\n".join(violations)


def test_the_scan_finds_imports_wherever_they_stand(tmp_path: Path) -> None:
    """Positive control: a function-level or `from` import is seen, a relative one is not a package."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from kubernetes import client\n    import grpc.aio\n"
                      "from . import sibling\n")
    assert imports(sample) == {"os", "kubernetes", "grpc"}


def test_no_shipped_module_over_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for package in sorted(PROJECT_PACKAGES) for p in sorted((ROOT / package).rglob("*.py"))}
    assert {path: n for path, n in sizes.items() if n > 400} == {}
