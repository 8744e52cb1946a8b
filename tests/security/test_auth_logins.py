"""Logins under attack: no user enumeration by timing, failed-login limits, and the
password checks kept apart from the storage threads (issue 15, items 3 and 4)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import bcrypt
import httpx
from auth_helpers import serving, write_config, write_htpasswd
from conftest import Server
from spec_helpers import assert_error


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


def _from(address: str, server: Server, user: str, password: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any 127.x is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, auth=(user, password), timeout=30)


def test_failed_logins_are_limited_per_address(tmp_path: Path) -> None:
    """failLimit failures a minute per address, then 429 with Retry-After, and no
    bcrypt; credentials that passed recently and API keys still work from there."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "right", "bob": "bob-pw"})
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True, "failLimit": 5}},
    )
    with serving(tmp_path / "data", config) as server:
        with _from("127.0.0.2", server, "alice", "right") as alice:
            assert alice.get("/v2/").status_code == 200  # checked once: remembered
            key = alice.post("/zot/auth/apikey", json={"label": "ci"}).json()["apiKey"]
        # Successful logins take nothing from the allowance.
        with _from("127.0.0.2", server, "bob", "bob-pw") as bob:
            assert [bob.get("/v2/").status_code for _ in range(10)] == [200] * 10
        with _from("127.0.0.2", server, "alice", "guess") as guess:
            assert [guess.get("/v2/").status_code for _ in range(5)] == [401] * 5
            limited = guess.get("/v2/")
            assert_error(limited, 429, "TOOMANYREQUESTS")
            # 5 a minute: the next check in 12 s, less the second the answer waited.
            assert 10 <= int(limited.headers["Retry-After"]) <= 12
            assert_error(guess.post("/v2/a/blobs/uploads/"), 429, "TOOMANYREQUESTS")
        # From that address: what needs no bcrypt check still works ...
        with _from("127.0.0.2", server, "alice", "right") as alice:
            assert alice.get("/v2/").status_code == 200
        with _from("127.0.0.2", server, "alice", key) as by_key:
            assert by_key.get("/v2/").status_code == 200
        # ... a password not checked lately waits, even a right one ...
        with _from("127.0.0.2", server, "carol", "new") as carol:
            assert_error(carol.get("/v2/"), 429, "TOOMANYREQUESTS")
        # ... and other addresses are not affected at all.
        with _from("127.0.0.3", server, "alice", "guess") as other:
            assert other.get("/v2/").status_code == 401
        with _from("127.0.0.3", server, "bob", "bob-pw") as bob:
            assert bob.get("/v2/").status_code == 200


def test_failed_logins_are_limited_by_default(tmp_path: Path) -> None:
    """Without failLimit (and without http.ratelimit) 30 failures a minute per address."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "right"})
    config = write_config(tmp_path / "config.json", {"auth": {"htpasswd": {"path": str(htpasswd)}}})
    with serving(tmp_path / "data", config) as server:
        with _from("127.0.0.2", server, "alice", "guess") as guess:
            codes = [guess.get("/v2/").status_code for _ in range(31)]
        assert codes == [401] * 30 + [429]
        with _from("127.0.0.3", server, "alice", "right") as alice:
            assert alice.get("/v2/").status_code == 200


def test_the_ui_login_counts_against_the_same_limit(tmp_path: Path) -> None:
    """The web UI's password form is one more door to guess through: it shares the
    per-address allowance with registry requests, and gets the same 429."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "right"})
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}, "failLimit": 3}},
        extensions={"search": {"enable": True}, "ui": {"enable": True}},
    )
    with serving(tmp_path / "data", config) as server:
        with _from("127.0.0.2", server, "", "") as browser:
            tries = [
                browser.post("/ui/session", json={"username": "alice", "password": f"g{n}"})
                for n in range(4)
            ]
            assert [t.status_code for t in tries] == [401, 401, 401, 429]
            assert_error(tries[3], 429, "TOOMANYREQUESTS")
            # The registry door of that address is shut as well: the allowance is one.
        with _from("127.0.0.2", server, "alice", "guess") as guess:
            assert_error(guess.get("/v2/"), 429, "TOOMANYREQUESTS")
        with _from("127.0.0.3", server, "", "") as other:
            ok = other.post("/ui/session", json={"username": "alice", "password": "right"})
            assert ok.status_code == 200 and ok.json()["user"] == "alice"
