"""The package's layers: each module imports only from its own layer or lower ones, never a private name of another
module, with no import cycle; and each module says what it owns."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

LAYERS = [
    {"orchestrator", "orchestrator.errors", "orchestrator.settings", "orchestrator.symbols"},
    {"orchestrator.data"},
    {"orchestrator.models"},
    {"orchestrator.scoring"},
    {"orchestrator.storages"},
    {"orchestrator.search"},
    {"orchestrator.decisions"},
    {"orchestrator.lifecycle"},
    {"orchestrator.views"},
    {"orchestrator.launch"},
    {"orchestrator.flags", "orchestrator.cli", "orchestrator.demo", "orchestrator.__main__"},
]
"""Lowest first: a base module, then the subpackages by concept, then the command line on top."""


def layer(module: str) -> int:
    """The layer of a module: its own entry, else its subpackage's (orchestrator.data.read -> orchestrator.data)."""
    for name in (module, ".".join(module.split(".")[:2])):
        for index, members in enumerate(LAYERS):
            if name in members:
                return index
    raise AssertionError(f"{module} is in no layer of LAYERS: add it (or its package) where it belongs")


def parsed() -> dict[str, ast.Module]:
    return {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"):
            ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def imports() -> dict[str, set[str]]:
    """Module -> the orchestrator modules it imports (at the top or inside functions)."""
    graph = {}
    for name, tree in parsed().items():
        found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        graph[name] = {m for m in found if m.startswith("orchestrator.") or m == "orchestrator"} - {name}
    return graph


def test_no_import_runs_against_the_layers() -> None:
    wrong = [f"{module} (layer {layer(module)}) imports {other} (layer {layer(other)})"
             for module, others in imports().items() for other in others if layer(other) > layer(module)]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = imports()
    assert {"orchestrator.storages.storage", "orchestrator.search.sampling", "orchestrator.lifecycle.study"} <= set(graph)

    def visit(module: str, path: tuple[str, ...]) -> None:
        for other in graph.get(module, ()):
            assert other not in path, f"import cycle: {' -> '.join((*path, other))}"
            visit(other, (*path, other))

    for module in graph:
        visit(module, (module,))


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [f"{name}: from {node.module} import {alias.name}" for name, tree in parsed().items()
               for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orchestrator")
               for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, "\n".join(private)


def test_every_module_imports_and_has_a_docstring() -> None:
    for name in imports():
        if name == "orchestrator.__main__":  # importing it runs the command line
            continue
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), f"{name} has no docstring saying what it owns"
