"""Read-your-writes across workers: after a 201 (or 202) from one worker, every worker
serves the new tag, manifest, catalog entry, referrer and deletion on the next request.

Each worker's caches are warmed with the old state first (many fresh connections reach
both), so a worker that did not validate its cache would answer from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from conftest import Server
from search_helpers import SEARCH, search_config
from spec_helpers import MANIFEST_ACCEPT, image_manifest, push_manifest
from workers_helpers import Answer, on_each_worker, start_workers


def _everywhere(server: Server, method: str, path: str, **kwargs: Any) -> list[Answer]:
    """The same request through every worker, twice, each time on a new connection."""
    return [a for _ in range(2) for a in on_each_worker(server, method, path, **kwargs)]


def test_every_worker_sees_each_write_on_the_next_request(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    repo, other = "ryw/app", "ryw/other"
    accept = {"Accept": MANIFEST_ACCEPT}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            base = push_manifest(c, other, image_manifest(c, other), "v1")
        # Warm every worker's caches: catalog, an unknown repository, tags.
        for resp in _everywhere(server, "GET", "/v2/_catalog"):
            assert resp.json()["repositories"] == [other]
        for resp in _everywhere(server, "GET", f"/v2/{other}/tags/list"):
            assert resp.json()["tags"] == ["v1"]

        with httpx.Client(base_url=server.url, timeout=30) as c:
            image = push_manifest(c, repo, image_manifest(c, repo), "v1")
            tagged = push_manifest(c, other, image_manifest(c, other), "v2")
        for resp in _everywhere(server, "GET", "/v2/_catalog"):
            assert resp.json()["repositories"] == sorted([repo, other])
        for resp in _everywhere(server, "GET", f"/v2/{other}/tags/list"):
            assert resp.json()["tags"] == ["v1", "v2"]
        for resp in _everywhere(server, "GET", f"/v2/{repo}/manifests/v1", headers=accept):
            assert resp.status == 200 and resp.content == image.body
        for resp in _everywhere(server, "GET", f"/v2/{other}/manifests/{tagged.digest}"):
            assert resp.status == 200

        # Referrers: an empty answer first (cached), then the new referrer everywhere.
        path = f"/v2/{repo}/referrers/{image.digest}"
        for resp in _everywhere(server, "GET", path):
            assert resp.json()["manifests"] == []
        with httpx.Client(base_url=server.url, timeout=30) as c:
            sig = image_manifest(
                c, repo, artifact_type="application/vnd.test.sig", subject=image.descriptor()
            )
            push_manifest(c, repo, sig)
        for resp in _everywhere(server, "GET", path):
            assert [d["digest"] for d in resp.json()["manifests"]] == [sig.digest]

        # Deletions: a tag, a manifest (and with it the referrer).
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.delete(f"/v2/{other}/manifests/v2").status_code == 202
            assert c.delete(f"/v2/{repo}/manifests/{sig.digest}").status_code == 202
        for resp in _everywhere(server, "GET", f"/v2/{other}/tags/list"):
            assert resp.json()["tags"] == ["v1"]
        for resp in _everywhere(server, "GET", path):
            assert resp.json()["manifests"] == []
        for resp in _everywhere(server, "GET", f"/v2/{repo}/manifests/{sig.digest}"):
            assert resp.status == 404
        for resp in _everywhere(server, "HEAD", f"/v2/{other}/manifests/{base.digest}"):
            assert resp.status == 200
    finally:
        server.stop()


def test_search_on_every_worker_sees_a_push_and_a_delete(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = search_config(tmp_path / "config.json", ui=False)
    server = start_workers(root, 2, config=config)
    repo = "ryw/searched"
    query = json.dumps(
        {"query": f'{{ ImageList(repo: "{repo}") {{ Page {{ TotalCount }} Results {{ Tag }} }} }}'}
    ).encode()
    headers = {"Content-Type": "application/json"}

    def tags() -> list[list[str]]:
        answers = on_each_worker(server, "POST", SEARCH, body=query, headers=headers)
        return [sorted(r["Tag"] for r in a.json()["data"]["ImageList"]["Results"]) for a in answers]

    try:
        assert tags() == [[], []]  # both indexes built, and asked once
        with httpx.Client(base_url=server.url, timeout=30) as c:
            pushed = push_manifest(c, repo, image_manifest(c, repo), "v1")
            push_manifest(c, repo, pushed, "v2")
        assert tags() == [["v1", "v2"], ["v1", "v2"]]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.delete(f"/v2/{repo}/manifests/v1").status_code == 202
        assert tags() == [["v2"], ["v2"]]
    finally:
        server.stop()
