"""``storage.subPaths``: repositories whose first path component is a configured prefix live
in that entry's root; all others in the default root.

The catalog lists both roots. Dedupe (hard links, the ``cache.db`` map) never crosses a
root, so a mount from a repository of the other root cannot be a link: it answers with an
upload session (202), while a mount within one root is a link (201).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server
from spec_helpers import location_url, push_blob, push_image, random_blob, with_params
from storage_helpers import blob_file, cache_paths, cache_rows, inode, pull_all, write_config


@dataclass
class TwoRoots:
    server: Server
    client: httpx.Client
    default: Path
    team: Path


@pytest.fixture
def two_roots(tmp_path: Path) -> Iterator[TwoRoots]:
    """A server with the default root A and ``/team`` routed to root B."""
    default, team = tmp_path / "a-root", tmp_path / "b-root"
    sub = {"rootDirectory": str(team), "dedupe": True, "gc": True, "gcDelay": "1h"}
    config = write_config(tmp_path / "config.json", default, subPaths={"/team": sub})
    server = start_server(default, config=config)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            yield TwoRoots(server, c, default, team)
    finally:
        server.stop()


def test_repositories_live_in_the_root_of_their_first_component(two_roots: TwoRoots) -> None:
    """team/... lives under the subPath root, everything else under the default root."""
    c, a, b = two_roots.client, two_roots.default, two_roots.team
    team = push_image(c, "team/x", "v1")
    other = push_image(c, "other/y", "v1")
    lookalike = push_image(c, "teamster/z", "v1")  # a prefix of the name, not a component
    assert (b / "team/x/index.json").is_file(), "team/x is not under the subPath root"
    assert not (a / "team/x").exists(), "team/x also written under the default root"
    assert (a / "other/y/index.json").is_file()
    assert not (b / "other").exists(), "other/y written under the subPath root"
    assert (a / "teamster/z/index.json").is_file(), "teamster/z routed by a name prefix"
    for digest in [team.digest, *team.blobs]:
        assert blob_file(b, "team/x", digest).is_file()
    for repo, pushed in (("team/x", team), ("other/y", other), ("teamster/z", lookalike)):
        pull_all(c, repo, pushed, "v1")
    catalog = c.get("/v2/_catalog")
    assert catalog.status_code == 200
    assert {"team/x", "other/y", "teamster/z"} <= set(catalog.json()["repositories"])
    # Each root keeps its own map, with paths relative to itself.
    assert cache_paths(b, team.digest) == [f"team/x/blobs/sha256/{team.digest[7:]}"]
    assert not [p for _, p in cache_rows(a) if p.startswith("team/")]


def test_catalog_lists_both_roots_after_restart(two_roots: TwoRoots) -> None:
    """After a restart the catalog, rebuilt from disk, still lists the repos of both roots."""
    c = two_roots.client
    push_image(c, "team/restart", "v1")
    push_image(c, "plain/restart", "v1")
    two_roots.server.stop()
    two_roots.server.start()
    listed = set(c.get("/v2/_catalog").json()["repositories"])
    assert {"team/restart", "plain/restart"} <= listed


def test_dedupe_stays_within_one_root(two_roots: TwoRoots) -> None:
    """The same blob in team/x and other/y is two inodes; within the team root it is one."""
    c, a, b = two_roots.client, two_roots.default, two_roots.team
    data = random_blob(4096)
    digest = push_blob(c, "team/x", data)
    push_blob(c, "other/y", data)
    push_blob(c, "team/z", data)
    in_b, in_a = blob_file(b, "team/x", digest), blob_file(a, "other/y", digest)
    assert inode(in_b) != inode(in_a), "a hard link across storage roots"
    assert inode(blob_file(b, "team/z", digest)) == inode(in_b), "no dedupe within the team root"
    assert os.stat(in_a).st_nlink == 1
    # A HEAD never links across roots.
    only_b = push_blob(c, "team/x", random_blob(300))
    assert c.head(f"/v2/other/w/blobs/{only_b}").status_code == 404
    assert not blob_file(a, "other/w", only_b).exists()


def test_mount_across_roots_opens_an_upload_within_a_root_links(two_roots: TwoRoots) -> None:
    """Mount from the other root answers 202 (an upload session); within one root 201."""
    c, a, b = two_roots.client, two_roots.default, two_roots.team
    data = random_blob(2048)
    digest = push_blob(c, "team/src", data)

    within = c.post(f"/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src")
    assert within.status_code == 201, f"mount within a root: {within.status_code} {within.text}"
    assert inode(blob_file(b, "team/dst", digest)) == inode(blob_file(b, "team/src", digest))

    across = c.post(f"/v2/other/dst/blobs/uploads/?mount={digest}&from=team/src")
    assert across.status_code == 202, f"mount across roots: {across.status_code} {across.text}"
    assert not blob_file(a, "other/dst", digest).exists()
    session = location_url(across)
    done = c.put(with_params(session, {"digest": digest}), content=data)
    assert done.status_code == 201, f"finishing the offered upload: {done.status_code}"
    assert blob_file(a, "other/dst", digest).read_bytes() == data
    assert os.stat(blob_file(a, "other/dst", digest)).st_nlink == 1

    back = c.post(f"/v2/team/back/blobs/uploads/?mount={digest}&from=other/dst")
    assert back.status_code == 202, f"mount across roots: {back.status_code} {back.text}"
