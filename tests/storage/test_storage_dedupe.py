"""Dedupe: identical blobs of the repositories of one root are hard links to one inode.

The durable map ``ROOT/_dockyard/cache.db`` (``blob_paths(digest, path)``, paths relative to
the root) finds the twin to link to; it is a hint the filesystem overrides, so stale records
are dropped, a moved root keeps deduplicating, and a root filled before dockyard ever ran is
adopted (its duplicates linked) in the background after start.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import images
from conftest import Server, start_server
from spec_helpers import push_blob, random_blob, sha256_digest
from storage_helpers import (
    CACHE_DB,
    apparent_and_actual,
    blob_file,
    blob_files,
    cache_paths,
    cache_rows,
    client_of,
    inode,
    pull_all,
    push_layers_image,
    wait_until,
)

MiB = 1024**2


def test_identical_blobs_in_two_repos_share_one_inode(fresh_registry: Server) -> None:
    """The same blob pushed to two repositories is one inode, recorded twice, relatively."""
    root = fresh_registry.root
    data = random_blob(4096)
    with client_of(fresh_registry) as c:
        digest = push_blob(c, "dd/one", data)
        assert push_blob(c, "dd/two", data) == digest
    one, two = blob_file(root, "dd/one", digest), blob_file(root, "dd/two", digest)
    assert one.read_bytes() == data
    assert inode(one) == inode(two), "identical blobs in one root are not hard links"
    assert os.stat(one).st_nlink == 2
    assert cache_paths(root, digest) == [
        f"dd/one/blobs/sha256/{digest[7:]}",
        f"dd/two/blobs/sha256/{digest[7:]}",
    ]


def test_head_links_a_blob_another_repo_holds(fresh_registry: Server) -> None:
    """HEAD in a repo lacking a blob another repo of the root holds: 200, hard-linked in."""
    root = fresh_registry.root
    data = random_blob(2048)
    with client_of(fresh_registry) as c:
        digest = push_blob(c, "hl/source", data)
        head = c.head(f"/v2/hl/never-pushed/blobs/{digest}")
        assert head.status_code == 200, f"HEAD: {head.status_code} {head.text}"
        assert head.headers.get("Docker-Content-Digest") == digest
        assert int(head.headers["Content-Length"]) == len(data)
        # The linked-in repository exists now, with a layout of its own.
        assert c.get("/v2/hl/never-pushed/tags/list").status_code == 200
        got = c.get(f"/v2/hl/never-pushed/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data
    src, linked = blob_file(root, "hl/source", digest), blob_file(root, "hl/never-pushed", digest)
    assert (root / "hl/never-pushed/index.json").is_file(), "no index.json after the link"
    assert (root / "hl/never-pushed/oci-layout").is_file(), "no oci-layout after the link"
    assert inode(linked) == inode(src), "HEAD did not hard-link the blob"
    assert os.stat(src).st_nlink == 2
    assert cache_paths(root, digest) == [
        f"hl/never-pushed/blobs/sha256/{digest[7:]}",
        f"hl/source/blobs/sha256/{digest[7:]}",
    ]


def test_get_does_not_link_a_blob_another_repo_holds(fresh_registry: Server) -> None:
    """Only HEAD links in: a GET in a repo lacking the blob is a 404, and nothing is linked."""
    root = fresh_registry.root
    data = random_blob(2048)
    with client_of(fresh_registry) as c:
        digest = push_blob(c, "gl/source", data)
        push_blob(c, "gl/other", random_blob(64))
        got = c.get(f"/v2/gl/other/blobs/{digest}")
        assert got.status_code == 404, f"GET: {got.status_code} {got.text}"
        assert got.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert not blob_file(root, "gl/other", digest).exists()
    assert len(cache_paths(root, digest)) == 1


def test_moved_root_still_deduplicates(tmp_path: Path) -> None:
    """Stop, mv the root, start on the new path: the same blob pushed again is a hard link."""
    before, after = tmp_path / "before" / "data", tmp_path / "after" / "data"
    data = random_blob(8192)
    before.parent.mkdir()
    server = start_server(before)
    try:
        with client_of(server) as c:
            digest = push_blob(c, "mv/first", data)
    finally:
        server.stop()
    for _, path in cache_rows(before):
        assert not path.startswith("/"), f"absolute path in cache.db: {path}"
    after.parent.mkdir()
    shutil.move(before, after)
    assert not before.exists()
    server = start_server(after)
    try:
        with client_of(server) as c:
            assert push_blob(c, "mv/second", data) == digest
            head = c.head(f"/v2/mv/third/blobs/{digest}")
            assert head.status_code == 200, f"HEAD after move: {head.status_code} {head.text}"
    finally:
        server.stop()
    first = inode(blob_file(after, "mv/first", digest))
    assert inode(blob_file(after, "mv/second", digest)) == first, "push after move: no link"
    assert inode(blob_file(after, "mv/third", digest)) == first, "HEAD after move: no link"
    assert os.stat(blob_file(after, "mv/first", digest)).st_nlink == 3


def test_stale_record_is_dropped_on_head(fresh_registry: Server) -> None:
    """A record whose file was removed by hand is dropped; the next one is linked; never 500."""
    root = fresh_registry.root
    data = random_blob(1024)
    with client_of(fresh_registry) as c:
        digest = push_blob(c, "st/a-gone", data)
        push_blob(c, "st/b-kept", data)
        gone = blob_file(root, "st/a-gone", digest)
        gone.unlink()  # removed behind the server's back; its record sorts first
        head = c.head(f"/v2/st/c-new/blobs/{digest}")
        assert head.status_code == 200, f"HEAD with a stale record: {head.status_code}"
        assert f"st/a-gone/blobs/sha256/{digest[7:]}" not in cache_paths(root, digest)
        kept = blob_file(root, "st/b-kept", digest)
        assert inode(blob_file(root, "st/c-new", digest)) == inode(kept)

        # Every recorded file gone: HEAD elsewhere is a clean 404 and the records go.
        for repo in ("st/b-kept", "st/c-new"):
            blob_file(root, repo, digest).unlink()
        head = c.head(f"/v2/st/b-kept/blobs/{digest}")
        assert head.status_code == 404, f"HEAD with only stale records: {head.status_code}"
        head = c.head(f"/v2/st/d-other/blobs/{digest}")
        assert head.status_code == 404, f"HEAD with only stale records: {head.status_code}"
    assert cache_rows(root, digest) == [], "stale records left in cache.db"


def test_stale_records_are_dropped_on_push(fresh_registry: Server) -> None:
    """Pushing a blob whose every recorded copy vanished stores a copy of its own (201)."""
    root = fresh_registry.root
    data = random_blob(3000)
    with client_of(fresh_registry) as c:
        digest = push_blob(c, "sp/one", data)
        push_blob(c, "sp/two", data)
        for repo in ("sp/one", "sp/two"):
            blob_file(root, repo, digest).unlink()
        assert push_blob(c, "sp/three", data) == digest  # asserts 201
        got = c.get(f"/v2/sp/three/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data
    fresh = blob_file(root, "sp/three", digest)
    assert os.stat(fresh).st_nlink == 1
    assert cache_paths(root, digest) == [f"sp/three/blobs/sha256/{digest[7:]}"]


def test_delete_blob_drops_its_record_and_frees_bytes(fresh_registry: Server) -> None:
    """DELETE blob removes its row; the link count drops; the last delete frees the bytes."""
    root = fresh_registry.root
    data = random_blob(5000)
    repos = ["del/a", "del/b", "del/c"]
    with client_of(fresh_registry) as c:
        digest = push_blob(c, repos[0], data)
        for repo in repos[1:]:
            push_blob(c, repo, data)
        assert os.stat(blob_file(root, repos[0], digest)).st_nlink == 3
        for i, repo in enumerate(repos):
            resp = c.delete(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 202, f"DELETE {repo}: {resp.status_code} {resp.text}"
            assert not blob_file(root, repo, digest).exists()
            left = repos[i + 1 :]
            assert sorted(cache_paths(root, digest)) == [
                f"{r}/blobs/sha256/{digest[7:]}" for r in left
            ]
            for survivor in left:
                assert os.stat(blob_file(root, survivor, digest)).st_nlink == len(left)
    assert cache_rows(root, digest) == [], "a row for a digest nobody holds"
    assert not [p for p in blob_files(root) if p.name == digest[7:]], "bytes not freed"


def test_adoption_links_duplicates_written_before_first_start(tmp_path: Path) -> None:
    """Duplicates in a root never served before become hard links soon after start."""
    root = tmp_path / "data"
    first = images.build_image(root / "adopt" / "one", layers=2)
    copies = ["adopt/two", "adopt/three", "adopt/deep/four"]
    for name in copies:
        shutil.copytree(root / "adopt" / "one", root / name)
    lone = images.build_image(root / "adopt" / "lone", layers=1)
    repos = ["adopt/one", *copies]
    digests = first.blob_digests
    for digest in digests:
        assert len({inode(blob_file(root, r, digest)) for r in repos}) == len(repos)
    assert not (root / CACHE_DB).exists()

    started = time.monotonic()
    server = start_server(root)
    try:
        with client_of(server) as c:
            t0 = time.monotonic()
            assert c.get("/v2/", timeout=2).status_code == 200
            print(f"\nstart to ready {t0 - started:.2f}s, GET /v2/ {time.monotonic() - t0:.3f}s")

            def linked() -> bool:
                return all(len({inode(blob_file(root, r, d)) for r in repos}) == 1 for d in digests)

            wait_until(linked, 10, "duplicate blobs of the adopted root became hard links")
            for repo in repos:
                for digest in digests:
                    got = c.get(f"/v2/{repo}/blobs/{digest}")
                    assert got.status_code == 200
                    assert got.content == first.blob(digest)
            manifest = c.get(
                "/v2/adopt/three/manifests/latest", headers={"Accept": images.MANIFEST}
            )
            assert manifest.status_code == 200
            assert manifest.content == first.blob(first.manifest_digest)
    finally:
        server.stop()
    for digest in digests:
        assert os.stat(blob_file(root, "adopt/one", digest)).st_nlink == len(repos)
        assert sorted(cache_paths(root, digest)) == sorted(
            f"{r}/blobs/sha256/{digest[7:]}" for r in repos
        )
    for digest in lone.blob_digests:
        assert os.stat(blob_file(root, "adopt/lone", digest)).st_nlink == 1


def test_twenty_images_sharing_a_base_layer_store_it_once(fresh_registry: Server) -> None:
    """20 images over one 4 MiB base in 20 repos: actual bytes <= apparent - 19 * base."""
    root = fresh_registry.root
    base = os.urandom(4 * MiB)
    base_digest = sha256_digest(base)
    with httpx.Client(base_url=fresh_registry.url, timeout=60) as c:
        pushed = [
            push_layers_image(c, f"fleet/app{i:02d}", [base, random_blob(512)], "v1")
            for i in range(20)
        ]
        pull_all(c, "fleet/app07", pushed[7], "v1")
    apparent, actual = apparent_and_actual(root)
    print(
        f"\ndedupe figure: 20 images, 4 MiB shared base: apparent {apparent} bytes "
        f"({apparent / MiB:.1f} MiB), actual {actual} bytes ({actual / MiB:.1f} MiB), "
        f"saved {apparent - actual} bytes"
    )
    assert os.stat(blob_file(root, "fleet/app00", base_digest)).st_nlink == 20
    assert len(cache_paths(root, base_digest)) == 20
    assert actual <= apparent - 19 * len(base), f"apparent {apparent}, actual {actual}"


def test_concurrent_pushes_of_one_blob_to_many_repos_store_it_once(
    fresh_registry: Server,
) -> None:
    """20 clients push the same blob to 20 repositories at the same moment (each saw 404
    on its HEAD): publishes of one digest take turns, so the first copy is kept and the
    other 19 are links to it, not 20 copies racing into place."""
    root = fresh_registry.root
    data = os.urandom(4 * MiB)
    digest = sha256_digest(data)
    repos = [f"race/app{i:02d}" for i in range(20)]
    start = threading.Barrier(len(repos))

    def push(repo: str) -> int:
        with httpx.Client(base_url=fresh_registry.url, timeout=60) as c:
            location = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
            start.wait()
            resp = c.put(
                location,
                params={"digest": digest},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            return resp.status_code

    with ThreadPoolExecutor(len(repos)) as pool:
        codes = list(pool.map(push, repos))
    assert codes == [201] * len(repos)
    inodes = {inode(blob_file(root, repo, digest)) for repo in repos}
    assert len(inodes) == 1, f"{len(inodes)} copies of one blob stored"
    assert len(cache_paths(root, digest)) == len(repos)
    with httpx.Client(base_url=fresh_registry.url, timeout=60) as c:
        for repo in repos:
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
