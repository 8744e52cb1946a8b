"""Web UI sessions across workers: a login on one worker is a session on every worker,
and a logout on another ends it everywhere."""

from __future__ import annotations

import json
from pathlib import Path

from auth_helpers import write_htpasswd
from search_helpers import search_config
from workers_helpers import connection_to, on_each_worker, send, start_workers, worker_pids


def test_a_login_holds_on_every_worker_and_a_logout_ends_it_everywhere(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"reader": "reader-pw"})
    config = search_config(
        tmp_path / "config.json", {"auth": {"htpasswd": {"path": str(htpasswd)}}}
    )
    server = start_workers(tmp_path / "data", 2, config=config)
    try:
        first, second = worker_pids(server)
        conn = connection_to(server, first)
        body = json.dumps({"username": "reader", "password": "reader-pw"}).encode()
        login = send(conn, "POST", "/ui/session", body, {"Content-Type": "application/json"})
        conn.close()
        assert login.status == 200, login.content
        cookie = login.headers["set-cookie"].split(";")[0]
        csrf = login.json()["csrf"]
        for answer in on_each_worker(server, "GET", "/ui/session", headers={"Cookie": cookie}):
            assert answer.json()["user"] == "reader"
        conn = connection_to(server, second)
        out = send(conn, "DELETE", "/ui/session", None, {"Cookie": cookie, "X-Dockyard-CSRF": csrf})
        conn.close()
        assert out.status == 200, out.content
        for answer in on_each_worker(server, "GET", "/ui/session", headers={"Cookie": cookie}):
            assert answer.json()["user"] is None
    finally:
        server.stop()
