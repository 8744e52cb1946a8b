"""A read never changes storage: every GET and HEAD route, on repositories that exist and
ones that do not, leaves the root's files exactly as they were and the catalog as it was.

The one write a HEAD may make, dedupe's link-in of a blob another repository holds, is a
push shortcut and happens only for callers who may push (see test_auth_matrix.py); here,
with auth off, it is left out by asking only for blobs no other repository holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from conftest import Server
from spec_helpers import (
    MANIFEST_ACCEPT,
    image_manifest,
    push_manifest,
    start_upload,
    unknown_digest,
)

#: SQLite's shared-memory index: readers take read marks in it, which is not storage.
_VOLATILE_SUFFIXES = ("-shm",)


def _snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every file and folder under ``root``: whether a folder, size and mtime."""
    found: dict[str, tuple[bool, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel.endswith(_VOLATILE_SUFFIXES):
                continue
            st = path.lstat()
            is_dir = path.is_dir()
            found[rel] = (is_dir, 0 if is_dir else st.st_size, 0 if is_dir else st.st_mtime_ns)
    return found


def _reads(c: httpx.Client, repo: str, tag: str, digest: str, blob: str, session: str) -> None:
    """Every read route of the API, each answered without a 5xx."""
    accept = {"Accept": MANIFEST_ACCEPT}
    paths = [
        f"/v2/{repo}/blobs/{blob}",
        f"/v2/{repo}/blobs/{unknown_digest()}",
        f"/v2/{repo}/blobs/sha256:nothex",
        f"/v2/{repo}/manifests/{tag}",
        f"/v2/{repo}/manifests/{digest}",
        f"/v2/{repo}/manifests/missing",
        f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME",
        f"/v2/{repo}/manifests/{unknown_digest()}",
        f"/v2/{repo}/tags/list",
        f"/v2/{repo}/tags/list?n=1&last=a",
        f"/v2/{repo}/referrers/{digest}",
        f"/v2/{repo}/referrers/{unknown_digest()}",
        f"/v2/{repo}/blobs/uploads/{session}",
        "/v2/_catalog",
        "/v2/_catalog?n=1",
        "/v2/",
    ]
    for path in paths:
        for method in ("GET", "HEAD"):
            r = c.request(method, path, headers=accept)
            assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"


def test_no_read_route_touches_the_disk(fresh_registry: Server) -> None:
    root = fresh_registry.root
    with httpx.Client(base_url=fresh_registry.url, timeout=30) as c:
        image = image_manifest(c, "a/app")
        push_manifest(c, "a/app", image, "v1")
        session = start_upload(c, "a/app").rsplit("/", 1)[1]
        held = image.blobs[0]
        before = _snapshot(root)
        assert c.get("/v2/_catalog").json()["repositories"] == ["a/app"]

        # The repository that exists: its own blob, manifests, tags, referrers, session.
        _reads(c, "a/app", "v1", image.digest, held, session)
        # Ones that do not, at the top and nested under an existing one. The blob asked
        # for is held nowhere, so no link-in can apply (auth is off: anyone may push).
        for repo in ("nope/app", "a/app/sub", "zzz"):
            _reads(c, repo, "v1", image.digest, unknown_digest(), session)
            assert not (root / repo).exists(), f"a read created {repo}"

        assert _snapshot(root) == before
        assert c.get("/v2/_catalog").json()["repositories"] == ["a/app"]
