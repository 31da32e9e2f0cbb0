"""The package's modules form no import cycle, and each says what it owns."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"


def imports() -> dict[str, set[str]]:
    """Module -> the orchestrator modules it imports (at the top or inside functions)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        graph[name] = {m for m in found if m.startswith("orchestrator.") or m == "orchestrator"} - {name}
    return graph


def test_no_import_cycle() -> None:
    graph = imports()
    assert {"orchestrator.storage", "orchestrator.sampling", "orchestrator.study"} <= set(graph)

    def visit(module: str, path: tuple[str, ...]) -> None:
        for other in graph.get(module, ()):
            assert other not in path, f"import cycle: {' -> '.join((*path, other))}"
            visit(other, (*path, other))

    for module in graph:
        visit(module, (module,))


def test_every_module_imports_and_has_a_docstring() -> None:
    for name in imports():
        if name == "orchestrator.__main__":  # importing it runs the command line
            continue
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), f"{name} has no docstring saying what it owns"
