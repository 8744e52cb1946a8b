"""Issue 10's structural rules, read from the source: the package graph has no cycle
(an import inside a function counts), storage imports nothing of the HTTP side, and
every import goes down the tiers of ``TIERS`` (docs/architecture.md, "Layers").

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


#: The tiers, top to bottom (docs/architecture.md, "Layers"): a unit may import only
#: units of lower tiers, or of its own tier when that tier is not marked independent.
TIERS: list[tuple[frozenset[str], bool]] = [
    (frozenset({"__main__", "cli", "commands"}), False),  # the command line
    (frozenset({"bench"}), True),  # the load generator, a tool of `dockyard bench`
    (frozenset({"app"}), True),  # the running process
    (frozenset({"api", "ext", "ui"}), True),  # handlers; extensions; the web UI
    (frozenset({"web"}), True),  # what the HTTP side shares: keys, routes, spec errors
    (frozenset({"auth"}), True),  # who is asking and what they may do
    (frozenset({"storage", "dbfile", "private"}), False),  # the engine and its SQLite files
    (frozenset({"config", "oci"}), True),  # the config model; OCI's pure formats
    (frozenset({"util"}), True),  # helpers that import nothing of dockyard
]


def _tier(unit: str) -> int | None:
    name = unit.removeprefix("dockyard.")
    return next((i for i, (units, _) in enumerate(TIERS) if name in units), None)


def test_every_unit_has_a_tier() -> None:
    graph = _graph()
    units = (set(graph) | {u for targets in graph.values() for u in targets}) - {"dockyard"}
    assert sorted(u for u in units if _tier(u) is None) == []


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import that goes up the tiers, or across an independent tier."""
    wrong = []
    for unit, targets in sorted(graph.items()):
        mine = _tier(unit)
        for target in sorted(targets):
            theirs = _tier(target)
            if mine is None or theirs is None:
                continue  # reported by test_every_unit_has_a_tier (or the root package)
            if theirs < mine or (theirs == mine and TIERS[mine][1]):
                wrong.append(f"{unit} -> {target}")
    return wrong


def test_imports_go_down_the_tiers() -> None:
    assert _upward(_graph()) == []


def test_the_tier_check_catches_upward_and_sideways_imports() -> None:
    graph = {
        "dockyard.storage": {"dockyard.api", "dockyard.oci"},
        "dockyard.api": {"dockyard.ext", "dockyard.web"},
        "dockyard.dbfile": {"dockyard.private"},
    }
    assert _upward(graph) == ["dockyard.api -> dockyard.ext", "dockyard.storage -> dockyard.api"]
