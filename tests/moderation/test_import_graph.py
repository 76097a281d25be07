"""The moderation modules import one another one way only, counting the imports inside functions:
a cycle hidden in a function still ties the modules together (the operations once imported the
tasks that import them)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import moderation

PACKAGE = Path(moderation.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """The moderation modules this file imports, at any depth in its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            # `from . import x` imports the module x; `from .x import f` imports the module x.
            submodules = {f"{source}.{alias.name}" for alias in node.names}
            modules = {module for module in submodules if is_module(module)}
            found |= modules
            if len(modules) < len(submodules):
                found.add(source)
    return {module for module in found if module.startswith("moderation.") and module != name}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")
            if "migrations" not in path.parts}


def test_the_graph_sees_imports_inside_functions():
    """The check must not be blind to the kind of import that hid the old cycle."""
    assert "moderation.sessions" in imported_modules(PACKAGE / "apps.py")  # inside AppConfig.ready


def test_moderation_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    try:
        order = tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        # graphlib lists each module before one that imports it; reversed, each imports the next.
        raise AssertionError(f"Import cycle: {' imports '.join(reversed(error.args[1]))}") from None
    assert {"moderation.tasks", "moderation.actions.ingest", "moderation.actions.enqueue"} <= set(order)
