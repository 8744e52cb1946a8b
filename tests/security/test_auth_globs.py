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


DEAD = {
    "Team/*": "upper case",
    "team/": "ends with a slash",
    "/team/app": "starts with a slash",
    "team//app": "empty path component",
    "team app/*": "' '",
    "team/app:latest": "':'",
    "team/-app": "'-app'",
    "{Red,BLUE}/box": "upper case",
}
ALIVE = ["team/*", "**", "{Red,red}/box", "[A-Za-z]x/y", "a.b_c__d--e/**", "x/\\d", "a-*/b"]


def test_globs_that_can_never_match_are_warned_about(tmp_path: Path) -> None:
    """At load time (``dockyard verify``, ``serve``, reload), each dead glob is named with
    its key and why; a glob some repository name could match is not."""
    import subprocess
    import sys

    repositories = {glob: READ for glob in [*DEAD, *ALIVE]}
    config = write_config(
        tmp_path / "config.json", {"accessControl": {"repositories": repositories}}
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "can never match" in line]
    for glob, why in DEAD.items():
        named = [line for line in lines if f"http.accessControl.repositories.{glob!r}" in line]
        assert len(named) == 1, (glob, done.stderr)
        assert why in named[0], named[0]
    assert len(lines) == len(DEAD), done.stderr
    # The running server warns too, in its log, and still serves what does match.
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/team/x/tags/list").status_code == 404
        log = server.output()
    assert "http.accessControl.repositories.'Team/*'" in log
