"""htpasswd logins: bcrypt entries, re-read on change, ``dockyard passwd``, failDelay,
constant-time answers, the bcrypt cache, and a zot config that works unchanged."""

from __future__ import annotations

import json
import os
import pty
import select
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import httpx
from auth_helpers import client_for, serving, write_config, write_htpasswd
from spec_helpers import assert_error, get_manifest, image_manifest, push_manifest


def dockyard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(tmp_path: Path, htpasswd: Path, **auth: object) -> Path:
    return write_config(
        tmp_path / "config.json", {"auth": {"htpasswd": {"path": str(htpasswd)}, **auth}}
    )


def test_passwd_command_and_reload_without_restart(tmp_path: Path) -> None:
    """Users added, changed and removed with ``dockyard passwd`` take effect at once."""
    htpasswd = tmp_path / "htpasswd"
    done = dockyard("passwd", str(htpasswd), "alice", "--cost", "4", stdin="first-pw\n")
    assert done.returncode == 0, done.stderr
    assert oct(htpasswd.stat().st_mode & 0o777) == "0o600"
    line = htpasswd.read_text().strip()
    assert line.startswith("alice:$2b$04$") and "first-pw" not in line
    with serving(tmp_path / "data", _config(tmp_path, htpasswd)) as server:
        with client_for(server, "alice", "first-pw") as c:
            assert c.get("/v2/").status_code == 200
        # Change the password: the old one stops working even though it was cached.
        done = dockyard("passwd", str(htpasswd), "alice", "--cost", "4", stdin="second-pw\n")
        assert done.returncode == 0 and "updated" in done.stdout
        with client_for(server, "alice", "first-pw") as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        with client_for(server, "alice", "second-pw") as c:
            assert c.get("/v2/").status_code == 200
        # A second user, written by another tool (htpasswd -B's $2y$ form).
        hashed = bcrypt.hashpw(b"bob-pw", bcrypt.gensalt(4)).decode()
        with htpasswd.open("a") as f:
            f.write(f"bob:$2y${hashed[4:]}\n")
        with client_for(server, "bob", "bob-pw") as c:
            assert c.get("/v2/").status_code == 200
        assert dockyard("passwd", str(htpasswd), "alice", "--delete").returncode == 0
        with client_for(server, "alice", "second-pw") as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        with client_for(server, "bob", "bob-pw") as c:
            assert c.get("/v2/").status_code == 200
    assert dockyard("passwd", str(htpasswd), "carol", stdin="\n").returncode == 2
    assert dockyard("passwd", str(htpasswd), "a:b", stdin="x\n").returncode == 2


def test_passwd_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the password is asked for twice, without echo."""
    htpasswd = tmp_path / "htpasswd"
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "passwd", str(htpasswd), "dave", "--cost", "4"],
        stdin=child,
        stdout=child,
        stderr=child,
        start_new_session=True,
    )
    os.close(child)
    seen = b""

    def read_until(word: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while word not in seen and time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                try:
                    seen += os.read(main, 1024)
                except OSError:
                    break

    read_until(b"Password:")
    os.write(main, b"tty-pw\n")
    read_until(b"Again:")
    os.write(main, b"tty-pw\n")
    assert proc.wait(30) == 0, seen
    read_until(b"added")
    os.close(main)
    assert b"tty-pw" not in seen, "the password was echoed"
    entry = htpasswd.read_text().strip().partition(":")[2]
    assert bcrypt.checkpw(b"tty-pw", entry.encode())


def _median_401(url: str, user: str, password: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        r = httpx.get(f"{url}/v2/", auth=(user, password), timeout=30)
        times.append(time.perf_counter() - started)
        assert r.status_code == 401
    return statistics.median(times)


def test_answers_take_the_same_time_for_unknown_users(tmp_path: Path) -> None:
    """A wrong password and an unknown user cost the same bcrypt check: no user probing."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "right"}, cost=10)
    with serving(tmp_path / "data", _config(tmp_path, htpasswd)) as server:
        _median_401(server.url, "warm", "up", runs=1)
        wrong_password = _median_401(server.url, "alice", "wrong")
        unknown_user = _median_401(server.url, "nobody", "wrong")
    assert wrong_password > 0.02, "bcrypt at cost 10 takes tens of milliseconds"
    ratio = unknown_user / wrong_password
    # Without the dummy check an unknown user is answered ~50x faster.
    assert 0.4 < ratio < 2.5, (wrong_password, unknown_user)


def test_fail_delay_slows_failures_only(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "right"})
    with serving(tmp_path / "data", _config(tmp_path, htpasswd, failDelay=1)) as server:
        started = time.perf_counter()
        assert httpx.get(f"{server.url}/v2/", auth=("alice", "bad")).status_code == 401
        assert time.perf_counter() - started >= 1.0
        started = time.perf_counter()
        assert httpx.get(f"{server.url}/v2/", auth=("alice", "right")).status_code == 200
        assert time.perf_counter() - started < 0.8


def test_a_pull_of_many_layers_pays_bcrypt_once(tmp_path: Path) -> None:
    """20 concurrent requests with the same credentials share one slow bcrypt check."""
    users = {"pusher": "p", "solo": "s", "alice": "right"}
    htpasswd = write_htpasswd(tmp_path / "htpasswd", users, cost=12)
    with serving(tmp_path / "data", _config(tmp_path, htpasswd)) as server:
        with client_for(server, "pusher", "p") as c:
            image = image_manifest(c, "app")
            push_manifest(c, "app", image, "v1")
        single = time.perf_counter()
        with client_for(server, "solo", "s") as c:
            assert c.get("/v2/").status_code == 200
        single = time.perf_counter() - single
        blob = image.blobs[0]
        started = time.perf_counter()
        with client_for(server, "alice", "right") as c, ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda _: c.get(f"/v2/app/blobs/{blob}").status_code, range(20)))
        elapsed = time.perf_counter() - started
    assert codes == [200] * 20
    assert single > 0.1, "cost 12 takes a good fraction of a second"
    assert elapsed < 20 * single / 4, (single, elapsed)


# zot's own documented accessControl example (examples/README.md), with the htpasswd
# auth and zot's capitalised ratelimit keys: it must load with no warning and behave.
ZOT_ACCESS_CONTROL = {
    "groups": {
        "group1": {"users": ["jack", "john", "jane", "ana"]},
        "group2": {"users": ["alice", "mike", "jim"]},
    },
    "repositories": {
        "**": {
            "policies": [{"users": ["charlie"], "actions": ["read", "create", "update"]}],
            "defaultPolicy": ["read", "create", "delete", "detectManifestCollision"],
            "anonymousPolicy": ["read"],
        },
        "tmp/**": {"defaultPolicy": ["read", "create", "update"]},
        "infra/*": {
            "policies": [
                {"users": ["alice", "bob"], "actions": ["create", "read", "update", "delete"]},
                {"users": ["mallory"], "actions": ["create", "read"]},
            ],
            "defaultPolicy": ["read"],
        },
        "repos2/repo": {
            "policies": [
                {"users": ["bob"], "groups": ["group1"], "actions": ["read", "create"]},
                {"users": ["mallory"], "actions": ["create", "read"]},
            ],
            "defaultPolicy": ["read"],
        },
    },
    "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]},
}


def test_a_zot_config_works_unchanged(tmp_path: Path) -> None:
    users = {u: f"{u}-pw" for u in ("admin", "charlie", "alice", "jane", "mallory", "zed")}
    htpasswd = write_htpasswd(tmp_path / "htpasswd", users)
    config = tmp_path / "zot.json"
    config.write_text(
        json.dumps(
            {
                "distSpecVersion": "1.1.0",
                "storage": {"rootDirectory": str(tmp_path / "data")},
                "http": {
                    "address": "127.0.0.1",
                    "port": "8080",
                    "realm": "zot",
                    "auth": {"htpasswd": {"path": str(htpasswd)}, "failDelay": 0},
                    "accessControl": ZOT_ACCESS_CONTROL,
                    "Ratelimit": {"Rate": 500, "Methods": [{"Method": "GET", "Rate": 500}]},
                },
                "log": {"level": "debug", "audit": str(tmp_path / "audit.log")},
            }
        )
    )
    verified = dockyard("verify", str(config))
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", f"zot keys reported as unknown: {verified.stderr}"

    with serving(tmp_path / "data", config) as server:

        def c(user: str | None) -> httpx.Client:
            return client_for(server, user, users.get(user or "", ""))

        with c("admin") as admin:
            for repo in ("infra/web", "repos2/repo", "tmp/a/b", "apps/x"):
                push_manifest(admin, repo, image_manifest(admin, repo), "v1")
        r = c(None).get("/v2/")
        assert r.headers["WWW-Authenticate"] == 'Basic realm="zot"'
        # anonymousPolicy on **: anonymous read of apps/x, but not push.
        with c(None) as anon:
            assert get_manifest(anon, "apps/x", "v1").status_code == 200
            assert_error(anon.post("/v2/apps/x/blobs/uploads/"), 401, "UNAUTHORIZED")
        # charlie: read/create/update on ** (and default create/delete there too).
        with c("charlie") as charlie:
            moved = image_manifest(charlie, "apps/x")
            push_manifest(charlie, "apps/x", moved, "v1")  # update: moves v1
            # infra/* is longer: charlie is only "default" there (read).
            assert_error(charlie.post("/v2/infra/web/blobs/uploads/"), 403, "DENIED")
        # zed, any authenticated user: defaultPolicy on ** has no update.
        with c("zed") as zed:
            again = image_manifest(zed, "apps/x")
            push_manifest(zed, "apps/x", again, "v2")  # create a new tag: fine
            r = zed.put(
                "/v2/apps/x/manifests/v1",
                content=again.body,
                headers={"Content-Type": again.media_type},
            )
            assert_error(r, 403, "DENIED")
            assert zed.delete("/v2/apps/x/manifests/v2").status_code == 202
            # tmp/** grants update to everyone authenticated.
            moved = image_manifest(zed, "tmp/a/b")
            push_manifest(zed, "tmp/a/b", moved, "v1")
        # jane is in group1: create on repos2/repo; mallory create but no update there.
        with c("jane") as jane:
            push_manifest(jane, "repos2/repo", image_manifest(jane, "repos2/repo"), "v2")
        with c("mallory") as mallory:
            m = image_manifest(mallory, "repos2/repo")
            r = mallory.put(
                "/v2/repos2/repo/manifests/v2",
                content=m.body,
                headers={"Content-Type": m.media_type},
            )
            assert_error(r, 403, "DENIED")
        # infra/* is one level only: infra/web/deeper falls to "**", where alice is default.
        with c("alice") as alice:
            push_manifest(alice, "infra/web", image_manifest(alice, "infra/web"), "v1")
            assert alice.post("/v2/infra/web/deeper/blobs/uploads/").status_code == 202
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert any(line["user"] == "mallory" and line["result"] == "denied" for line in lines)


def test_non_bcrypt_entries_are_refused_and_named(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("old:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with serving(tmp_path / "data", _config(tmp_path, htpasswd)) as server:
        assert httpx.get(f"{server.url}/v2/", auth=("old", "password")).status_code == 401
        assert "'old' has a non-bcrypt hash" in server.output()


def test_missing_htpasswd_file_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "absent")
    done = dockyard("verify", str(config))
    assert done.returncode == 2
    assert "http.auth.htpasswd.path" in done.stderr and "no such file" in done.stderr


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    """examples/config-auth.json (the README's) loads with no warning once its files exist."""
    from certs import server_pki

    example = Path(__file__).parents[2] / "examples" / "config-auth.json"
    config = json.loads(example.read_text())
    pki = server_pki(tmp_path / "pki")
    http = config["http"]
    http["tls"] = {"cert": str(pki.cert), "key": str(pki.key)}
    http["auth"]["htpasswd"]["path"] = str(write_htpasswd(tmp_path / "htpasswd", {"a": "b"}))
    config["storage"]["rootDirectory"] = str(tmp_path / "data")
    config["log"]["audit"] = str(tmp_path / "audit.log")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = dockyard("verify", str(path))
    assert done.returncode == 0 and done.stderr == "", done.stderr
