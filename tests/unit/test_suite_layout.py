"""The suite's layout rules, checked: a test file never imports another test file (what
two areas share lives in a ``*_helpers`` module), and no two test files share a base name
(pytest's default import mode would refuse the second one)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def test_no_test_file_imports_another() -> None:
    found = []
    for path in _test_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [
                f"{path.relative_to(TESTS)} imports {n}" for n in names if n.startswith("test_")
            ]
    assert found == []


def test_test_file_names_are_unique_across_areas() -> None:
    counts = Counter(path.name for path in _test_files())
    assert [name for name, n in counts.items() if n > 1] == []
