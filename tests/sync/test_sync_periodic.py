"""Periodic sync (``pollInterval``) and ``dockyard sync CONFIG --once``.

The upstream is a second dockyard with htpasswd. Rules are zot's: a glob prefix with a
tag regex and the semver filter, and a prefix renamed by ``destination`` with
``stripPrefix``. What lands must be the upstream's bytes under the upstream's digests, as
valid OCI layouts, with referrers; a second pass must move no blob bytes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config, write_htpasswd
from conftest import Server, free_port
from images import blob_path, read_blob
from spec_helpers import (
    MANIFEST_ACCEPT,
    Pushed,
    image_manifest,
    list_tags,
    push_image,
    push_manifest,
    tag_manifest,
)
from sync_helpers import UPSTREAM_PASSWORD, UPSTREAM_USER, sync_config, write_credentials

APPS_TAGS = ["v1.0.0", "v1.2.0", "v1.3.0-rc1", "v1.x", "v2.0.0", "latest"]
#: ``^v1\.`` and semver: v1.x matches the regex but is no version; v2.0.0 and latest fail it.
APPS_KEPT = ["v1.0.0", "v1.2.0", "v1.3.0-rc1"]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    htpasswd = write_htpasswd(tmp_path / "up-htpasswd", {UPSTREAM_USER: UPSTREAM_PASSWORD})
    config = write_config(tmp_path / "up.json", {"auth": {"htpasswd": {"path": str(htpasswd)}}})
    with serving(tmp_path / "up-data", config) as server:
        yield server


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(UPSTREAM_USER, UPSTREAM_PASSWORD), timeout=30)


def _fill(upstream: Server) -> dict[str, Pushed]:
    with _client(upstream) as up:
        images = {}
        base = push_image(up, "apps/a", layers=2)
        for tag in APPS_TAGS:
            images[f"apps/a:{tag}"] = base if tag == "v1.0.0" else push_image(up, "apps/a")
            tag_manifest(up, "apps/a", images[f"apps/a:{tag}"], tag)
        images["apps/b/c:v1.0.1"] = push_image(up, "apps/b/c", "v1.0.1")
        images["team/x:1.0"] = push_image(up, "team/x", "1.0")
        images["skip/me:v1.0.0"] = push_image(up, "skip/me", "v1.0.0")
        signature = image_manifest(
            up, "apps/a", artifact_type="application/vnd.test.signature", subject=base.descriptor()
        )
        images["signature"] = push_manifest(up, "apps/a", signature)
    return images


def _config(tmp_path: Path, upstream: Server, poll: str = "1h", **top: object) -> Path:
    creds = write_credentials(tmp_path / "sync-auth.json", [upstream.host])
    entry = {
        "urls": [upstream.url],
        "onDemand": False,
        "pollInterval": poll,
        "content": [
            {"prefix": "apps/**", "tags": {"regex": "^v1\\.", "semver": True}},
            {"prefix": "team/**", "destination": "/mirror", "stripPrefix": True},
        ],
    }
    top.setdefault("storage", {"rootDirectory": str(tmp_path / "data")})
    return sync_config(tmp_path / "config.json", [entry], creds, **top)


def _sync_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "sync", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sync_once_applies_regex_semver_and_destination(tmp_path: Path, upstream: Server) -> None:
    """One pass copies exactly the tags the rules keep, renames team/x to mirror/x, keeps
    every byte and digest, copies the referrers, and leaves valid OCI layouts."""
    images = _fill(upstream)
    config = _config(tmp_path, upstream)
    first = _sync_once(config)
    assert first.returncode == 0, first.stderr
    root = tmp_path / "data"
    assert "image" in first.stderr  # the progress bar

    with serving(tmp_path / "data", config) as local, httpx.Client(base_url=local.url) as c:
        assert sorted(list_tags(c, "apps/a")) == APPS_KEPT
        assert list_tags(c, "apps/b/c") == ["v1.0.1"]
        assert list_tags(c, "mirror/x") == ["1.0"]
        assert c.get("/v2/skip/me/tags/list").status_code == 404
        assert c.get("/v2/team/x/tags/list").status_code == 404
        for ref, repo in (("apps/a:v1.2.0", "apps/a"), ("team/x:1.0", "mirror/x")):
            tag = ref.split(":")[1]
            got = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
            assert got.content == images[ref].body
            assert got.headers["Docker-Content-Digest"] == images[ref].digest
        subject = images["apps/a:v1.0.0"].digest
        referrers = c.get(f"/v2/apps/a/referrers/{subject}").json()["manifests"]
        assert [r["digest"] for r in referrers] == [images["signature"].digest]

    for ref in ("apps/a:v1.0.0", "apps/a:v1.3.0-rc1", "apps/b/c:v1.0.1"):
        repo = ref.split(":")[0]
        pushed = images[ref]
        assert read_blob(root / repo, pushed.digest) == pushed.body
        with _client(upstream) as up:
            for digest in pushed.blobs:
                upstream_bytes = up.get(f"/v2/{repo}/blobs/{digest}").content
                assert blob_path(root / repo, digest).read_bytes() == upstream_bytes
    for repo in ("apps/a", "apps/b/c", "mirror/x"):
        umoci = subprocess.run(["umoci", "ls", "--layout", str(root / repo)], capture_output=True)
        assert umoci.returncode == 0, umoci.stderr.decode()

    second = _sync_once(config)
    assert second.returncode == 0, second.stderr
    assert "0 copied" in second.stdout and " 0 bytes" in second.stdout, second.stdout


def test_new_upstream_tags_arrive_and_nothing_is_deleted(tmp_path: Path, upstream: Server) -> None:
    """A later pass brings a new tag and keeps tags the upstream deleted (no deletes)."""
    _fill(upstream)
    config = _config(tmp_path, upstream)
    assert _sync_once(config).returncode == 0
    with _client(upstream) as up:
        newer = push_image(up, "apps/a", "v1.4.0")
        assert up.delete("/v2/apps/a/manifests/v1.2.0").status_code == 202
    again = _sync_once(config)
    assert again.returncode == 0, again.stderr
    assert "1 copied" in again.stdout
    with serving(tmp_path / "data", config) as local, httpx.Client(base_url=local.url) as c:
        assert sorted(list_tags(c, "apps/a")) == sorted([*APPS_KEPT, "v1.4.0"])
        got = c.get("/v2/apps/a/manifests/v1.4.0", headers={"Accept": MANIFEST_ACCEPT})
        assert got.content == newer.body


def test_sync_once_with_the_upstream_down_fails_loudly(tmp_path: Path, upstream: Server) -> None:
    """``--once`` against an upstream nobody answers exits non-zero, promptly."""
    dead = Server(root=tmp_path, port=free_port(), args=[])
    started = time.monotonic()
    result = _sync_once(_config(tmp_path, dead))
    assert result.returncode == 1, result.stdout
    assert "no upstream URL answered" in result.stdout
    assert time.monotonic() - started < 60


def test_server_syncs_every_poll_interval(tmp_path: Path, upstream: Server) -> None:
    """A serving dockyard runs the passes in the background and counts them in metrics."""
    images = _fill(upstream)
    config = _config(
        tmp_path,
        upstream,
        poll="1s",
        extensions={"metrics": {"enable": True}},
    )
    with serving(tmp_path / "data", config) as local, httpx.Client(base_url=local.url) as c:
        deadline = time.monotonic() + 60
        while c.get("/v2/mirror/x/tags/list").status_code != 200:
            assert time.monotonic() < deadline, local.output()
            time.sleep(0.2)
        got = c.get("/v2/mirror/x/manifests/1.0", headers={"Accept": MANIFEST_ACCEPT})
        assert got.content == images["team/x:1.0"].body
        metrics = c.get("/metrics").text
        assert "dockyard_sync_images_total" in metrics
        # The pass logs each image once it is stored, so the line may trail the tag.
        while "sync: copied mirror/x:1.0" not in local.output():
            assert time.monotonic() < deadline, local.output()
            time.sleep(0.2)
