"""Issue 10 item 5, read from the source: a module's file name says what it holds without
its folder (no two share one), and zot's hour and day defaults are written once."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import dockyard

SRC = Path(dockyard.__file__).resolve().parent


def test_no_two_modules_share_a_file_name() -> None:
    homes: dict[str, list[str]] = defaultdict(list)
    for path in SRC.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            homes[path.name].append(str(path.relative_to(SRC)))
    assert {name: sorted(paths) for name, paths in homes.items() if len(paths) > 1} == {}


def test_config_writes_the_hour_and_the_day_once() -> None:
    literal = re.compile(r"\b(3600|86400)(\.0)?\b")
    found = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted((SRC / "config").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == ["config/section.py:20"]
