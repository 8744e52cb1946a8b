"""Repository globs as zot reads them, checked through a running server.

Each glob grants anonymous ``read``; a repository the glob covers answers 404 (allowed,
and absent), one it does not answers 401. The longest matching glob decides, even when
it grants less than a shorter one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from auth_helpers import serving, write_config

READ = {"anonymousPolicy": ["read"]}
NOTHING: dict[str, list[str]] = {"anonymousPolicy": []}

GLOBS = {
    "deep/**": READ,  # any depth, and deep itself
    "one/*": READ,  # exactly one level below one/
    "**/leaf": READ,  # leaf at any depth, including the top
    "mid/**/end": READ,  # zero or more levels between
    "{red,blue}/box": READ,
    "[ab]x/y": READ,
    "[!ab]z/y": READ,
    "q?/w": READ,
    "deep/closed": NOTHING,  # longer than deep/**: wins, and grants nothing
    # Longer still, for what is below it. (Not "deep/closed/**": that also matches
    # deep/closed itself, and being the longest it would open it again.)
    "deep/closed/*": READ,
}

CASES = {
    "deep": True,
    "deep/a": True,
    "deep/a/b/c": True,
    "deeper/a": False,
    "deep/closed": False,
    "deep/closed/x": True,
    "one": False,
    "one/a": True,
    "one/a/b": False,
    "leaf": True,
    "x/y/leaf": True,
    "x/leafy": False,
    "mid/end": True,
    "mid/a/b/end": True,
    "mid/end/x": False,
    "red/box": True,
    "blue/box": True,
    "green/box": False,
    "ax/y": True,
    "cx/y": False,
    "cz/y": True,
    "az/y": False,
    "q1/w": True,
    "q12/w": False,
    "other": False,
}


def test_glob_semantics(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"accessControl": {"repositories": GLOBS}})
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        # Only anonymous policies and no way to log in: /v2/ is open.
        assert c.get("/v2/").status_code == 200
        got = {repo: c.get(f"/v2/{repo}/tags/list").status_code for repo in CASES}
    expected = {repo: 404 if readable else 401 for repo, readable in CASES.items()}
    assert got == expected
