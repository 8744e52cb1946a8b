"""Who may read ``/metrics``: its per-repository labels name every repository.

With auth configured, metrics need a login: users listed in zot's
``accessControl.metrics.users``, or, when none are listed, the users who may read every
repository anyway (``adminPolicy`` with ``read``). Or they are served on a listener of
their own (``extensions.metrics.address``/``port``) and not on the registry's port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from auth_helpers import client_for, serving, write_config, write_htpasswd
from conftest import free_port
from ops_helpers import wait_for
from spec_helpers import assert_error, image_manifest, push_manifest

USERS = {"alice": "alice-pw", "prom": "prom-pw", "admin": "admin-pw"}
REPOS = {"alice/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]}}
ADMIN = {"users": ["admin"], "actions": ["read", "create", "update", "delete"]}
SECRET_REPO = "alice/secret-project"


def _config(tmp_path: Path, access: dict[str, Any], metrics: dict[str, Any]) -> Path:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    return write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": access},
        extensions={"metrics": metrics},
    )


def _push_secret(server: Any) -> None:
    with client_for(server, "alice", "alice-pw") as c:
        push_manifest(c, SECRET_REPO, image_manifest(c, SECRET_REPO), "v1")


def _scrape_with(server: Any, user: str | None, path: str = "/metrics") -> httpx.Response:
    password = USERS.get(user) if user else None
    with client_for(server, user, password) as c:
        return c.get(path)


def _names_the_secret(get: Any) -> str:
    """The metrics text once the usage cache has walked the pushed repository (it is
    filled in the background, within about a second)."""
    label = f'repo="{SECRET_REPO}"'

    def scraped() -> str | None:
        r = get()
        assert r.status_code == 200, r.text
        return str(r.text) if label in r.text else None

    return str(wait_for(scraped, 15, f"{label} in the metrics"))


def test_metrics_users_are_the_only_readers(tmp_path: Path) -> None:
    """zot's ``accessControl.metrics.users``: anonymous 401 with the challenge, any other
    user 403, a listed user gets the metrics, repository labels and all."""
    access = {"repositories": REPOS, "metrics": {"users": ["prom"]}, "adminPolicy": ADMIN}
    with serving(tmp_path / "data", _config(tmp_path, access, {"enable": True})) as server:
        _push_secret(server)
        ok = _names_the_secret(lambda: _scrape_with(server, "prom"))
        assert "dockyard_http_requests_total" in ok
        anonymous = _scrape_with(server, None)
        assert_error(anonymous, 401, "UNAUTHORIZED")
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert SECRET_REPO not in anonymous.text
        for user in ("alice", "admin"):  # not listed: even the admin
            refused = _scrape_with(server, user)
            assert_error(refused, 403, "DENIED")
            assert SECRET_REPO not in refused.text
        wrong = httpx.get(f"{server.url}/metrics", auth=("prom", "nope"), timeout=10)
        assert_error(wrong, 401, "UNAUTHORIZED")


def test_by_default_only_those_who_read_everything_may(tmp_path: Path) -> None:
    """No ``metrics`` section but auth on: the default leaks no repository name. Only
    ``adminPolicy`` users with ``read`` (who may list every repository) get in."""
    access = {"repositories": REPOS, "adminPolicy": ADMIN}
    with serving(tmp_path / "data", _config(tmp_path, access, {"enable": True})) as server:
        _push_secret(server)
        _names_the_secret(lambda: _scrape_with(server, "admin"))
        assert_error(_scrape_with(server, None), 401, "UNAUTHORIZED")
        for user in ("alice", "prom"):
            refused = _scrape_with(server, user)
            assert_error(refused, 403, "DENIED")
            assert SECRET_REPO not in refused.text


def test_metrics_on_a_listener_of_their_own(tmp_path: Path) -> None:
    """``extensions.metrics.address``/``port``: the metrics are served there, without a
    login, and the registry's port no longer serves them at all."""
    port = free_port()
    metrics = {"enable": True, "address": "127.0.0.1", "port": port}
    access = {"repositories": REPOS, "adminPolicy": ADMIN}
    with serving(tmp_path / "data", _config(tmp_path, access, metrics)) as server:
        _push_secret(server)
        own = _names_the_secret(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10))
        for user in (None, "admin"):
            on_main = _scrape_with(server, user)
            assert on_main.status_code == 404, on_main.status_code
            assert SECRET_REPO not in on_main.text
        # Only the scrape path lives there: the registry API does not.
        assert httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=10).status_code == 404
        # Requests on the main port are still counted.
        assert 'route="/v2/{name}/manifests/{reference}"' in own
