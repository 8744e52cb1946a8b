"""Logins under attack: no user enumeration by timing, failed-login limits, and the
password checks kept apart from the storage threads (issue 15, items 3 and 4)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import bcrypt
import httpx
from auth_helpers import serving, write_config


def _median_401(url: str, user: str, password: str, runs: int = 7) -> float:
    """The median time of ``runs`` refused logins, over one kept-alive connection."""
    times = []
    with httpx.Client(base_url=url, auth=(user, password), timeout=30) as c:
        for _ in range(runs):
            started = time.perf_counter()
            r = c.get("/v2/")
            times.append(time.perf_counter() - started)
            assert r.status_code == 401
    return statistics.median(times)


def test_unknown_users_cost_the_highest_cost_in_the_file(tmp_path: Path) -> None:
    """A cost-4 entry first must not make unknown users cheaper than a cost-10 user."""
    cheap = bcrypt.hashpw(b"old", bcrypt.gensalt(4)).decode()
    dear = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"legacy:{cheap}\nalice:{dear}\n")
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}, "failLimit": 0}},
    )
    with serving(tmp_path / "data", config) as server:
        _median_401(server.url, "warm", "up", runs=1)  # builds the dummy hash
        wrong_password = _median_401(server.url, "alice", "wrong")
        unknown_user = _median_401(server.url, "nobody", "wrong")
    assert wrong_password > 0.02, "bcrypt at cost 10 takes tens of milliseconds"
    # With the first entry's cost (4) an unknown user is answered ~15x faster.
    ratio = unknown_user / wrong_password
    assert 0.4 < ratio < 2.5, (wrong_password, unknown_user)
