"""The emulator's import rules: no circle between its modules, and never the dashboard.

Read from the source with ``ast`` (imports under ``if TYPE_CHECKING:`` count too: a circle there
still ties the two modules together), so the rule holds whatever Python happens to import first.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "device_mock"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved in the package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{PACKAGE}.{base}" if base else PACKAGE
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # ``from . import x``
    return names


def _graph() -> dict[str, set[str]]:
    modules = {f"{PACKAGE}.{path.stem}": path for path in ROOT.glob("*.py") if path.stem != "__init__"}
    return {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle found by a depth-first walk, each as the path that closes it."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


def test_the_emulator_modules_import_each_other_without_a_circle():
    cycles = _cycles(_graph())
    assert not cycles, "import circle(s): " + "; ".join(" -> ".join(c) for c in cycles)


def test_faults_does_not_import_device():
    assert f"{PACKAGE}.device" not in _graph()[f"{PACKAGE}.faults"]


def test_no_emulator_module_imports_the_dashboard():
    offenders = {
        path.name: sorted(n for n in _imports(path) if n == "dashboard" or n.startswith("dashboard."))
        for path in ROOT.glob("*.py")
    }
    assert not {name: found for name, found in offenders.items() if found}
