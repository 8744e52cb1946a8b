"""Issue 10's structural rules, read from the source: the package graph has no cycle
(an import inside a function counts), and storage imports nothing of the HTTP side.

A unit is a subpackage of dockyard (``dockyard.storage``) or a module at its root
(``dockyard.cli``). Imports under ``if TYPE_CHECKING:`` count too: mypy reads them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import dockyard

SRC = Path(dockyard.__file__).resolve().parent
#: What storage must never import: the HTTP side and the running process.
HTTP_SIDE = (
    "aiohttp",
    "dockyard.api",
    "dockyard.ext",
    "dockyard.ui",
    "dockyard.web",
    "dockyard.app",
)


def _module_name(path: Path) -> str:
    parts = ["dockyard", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute, wherever the import statement sits."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    return _imports_of(path.read_text(), package)


def _imports_of(source: str, package: str) -> Iterator[str]:
    """The modules (and possible submodules) ``source``, in ``package``, imports."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dockyard" or len(parts) < 2:
        return None
    candidate = SRC / parts[1]
    if candidate.is_dir() or candidate.with_suffix(".py").is_file():
        return f"dockyard.{parts[1]}"
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = _unit(_module_name(path)) or "dockyard"
        targets = graph.setdefault(source, set())
        for imported in _imports(path):
            target = _unit(imported)
            if target is not None and target != source:
                targets.add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_and_relative_imports_are_read() -> None:
    source = (
        "import aiohttp\n"
        "def f():\n"
        "    from dockyard.api import routes\n"
        "    from ..oci import digest\n"
        "    from . import layout\n"
    )
    found = set(_imports_of(source, "dockyard.storage"))
    assert {"aiohttp", "dockyard.api", "dockyard.oci", "dockyard.storage.layout"} <= found


def test_the_graph_holds_the_real_imports() -> None:
    graph = _graph()
    assert "dockyard.oci" in graph["dockyard.storage"]
    assert graph["dockyard.oci"] <= {"dockyard.oci"}  # oci is the bottom layer


def test_the_package_graph_has_no_cycle() -> None:
    assert _cycles(_graph()) == []


def test_storage_imports_nothing_of_the_http_side() -> None:
    bad = [
        f"{path.relative_to(SRC)} imports {imported}"
        for path in sorted((SRC / "storage").rglob("*.py"))
        for imported in _imports(path)
        if imported.startswith(HTTP_SIDE)
    ]
    assert bad == []
