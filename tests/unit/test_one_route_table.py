"""Issue 10 item 4, read from the source: routes are declared as rows that carry their
access (``dockyard.web.routing.Route``) and installed by ``add_routes`` only; the
middleware chain is built in one module, in order; no second URL table exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import dockyard
from dockyard.api.routes import API_KEY_ROUTES, APIKEY_PATH, PROBE_ROUTES, SPEC_ROUTES
from dockyard.web.routing import Access

SRC = Path(dockyard.__file__).resolve().parent
#: The separate metrics listener serves one unguarded path on an app of its own.
SEPARATE_LISTENER = SRC / "ext" / "metrics.py"


def _sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(SRC.rglob("*.py"))}


def test_routes_are_added_only_through_the_route_tables() -> None:
    direct = re.compile(r"\brouter\.add_(get|post|put|patch|delete|head|route)\(")
    found = [
        f"{path.relative_to(SRC)}: {line.strip()}"
        for path, text in _sources().items()
        for line in text.splitlines()
        if direct.search(line) and path != SRC / "web" / "routing.py"
    ]
    assert found == [
        f"{SEPARATE_LISTENER.relative_to(SRC)}: scrape_app.router.add_get(path, _scrape)"
    ]


def test_the_middleware_chain_is_built_in_one_place() -> None:
    touching = sorted(
        str(path.relative_to(SRC))
        for path, text in _sources().items()
        if re.search(r"\.middlewares\.\w+\(|middlewares=", text)
    )
    assert touching == ["app/server.py"]
    assert "insert(0" not in "".join(_sources().values())


def test_the_api_key_path_is_spelled_once() -> None:
    spelled = [p for p, text in _sources().items() if '"/zot/auth/apikey' in text]
    assert spelled == [SRC / "api" / "routes.py"]
    assert {r.path.rstrip("/") for r in API_KEY_ROUTES} == {APIKEY_PATH}


def test_every_repository_route_names_its_action() -> None:
    for route in SPEC_ROUTES + PROBE_ROUTES + API_KEY_ROUTES:
        assert (route.access is Access.REPO) == (route.action is not None), route
        assert (route.access is Access.REPO) == ("{name" in route.path), route
