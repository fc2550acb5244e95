"""Only `kube/` talks to the Kubernetes client; `kube/` knows nothing of the project above it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"podnetwork", "controller", "cni", "agent", "datapath", "multinet"}


def top_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_controller_reaches_the_api_only_through_kube() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "controller").rglob("*.py"))
                 if top_imports(p) & {"kubernetes", "urllib3"}]
    assert not offenders, offenders


def test_kube_imports_nothing_of_the_project() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(top_imports(p) & PROJECT)
                 for p in sorted((ROOT / "kube").rglob("*.py")) if top_imports(p) & PROJECT}
    assert not offenders, offenders


def test_kube_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "kube").glob("*.py")}
    assert max(sizes.values()) < 400, sizes
