"""Who may make a repository name a shared copy on an S3 root (dedupe by reference).

The side effect is a reference object written in the bucket. It is written by a push, a
cross-repository mount, or a HEAD by a pusher (zot's check-blob), and only from a
repository the caller may read: a HEAD by a reader, or by a pusher who cannot read any
repository holding the blob, answers 404 and writes nothing, as on a local root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import write_htpasswd
from conftest import Server
from s3_helpers import S3Server, s3_config, start_s3_registry
from spec_helpers import push_blob, random_blob

PASSWORDS = {"owner": "owner-pw", "pusher": "pusher-pw", "reader": "reader-pw"}
ACCESS_CONTROL = {
    "repositories": {
        "private/**": {"policies": [{"users": ["owner"], "actions": ["read", "create"]}]},
        "open/**": {
            "policies": [
                {"users": ["owner", "pusher"], "actions": ["read", "create"]},
                {"users": ["reader"], "actions": ["read"]},
            ]
        },
        "mine/**": {"policies": [{"users": ["pusher"], "actions": ["read", "create"]}]},
    },
}


@pytest.fixture
def registry(s3_server: S3Server, tmp_path: Path) -> Iterator[Server]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", PASSWORDS)
    bucket = s3_server.new_bucket()
    config = s3_config(
        s3_server,
        tmp_path / "data",
        bucket,
        {
            "http": {
                "auth": {"htpasswd": {"path": str(htpasswd)}},
                "accessControl": ACCESS_CONTROL,
            }
        },
    )
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    yield server
    server.stop()


def _as(server: Server, user: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, PASSWORDS[user]), timeout=60)


def test_head_and_mount_name_a_shared_copy_only_from_readable_repositories(
    registry: Server, s3_server: S3Server
) -> None:
    bucket = registry.bucket  # type: ignore[attr-defined]
    with _as(registry, "owner") as owner:
        secret = push_blob(owner, "private/app", random_blob(4096))
        public = push_blob(owner, "open/app", random_blob(4096))

    def named(repo: str, digest: str) -> bool:
        key = f"dockyard/{repo}/blobs/sha256/{digest.removeprefix('sha256:')}"
        return key in s3_server.keys(bucket)

    with _as(registry, "pusher") as pusher:
        # Only private/app holds it, and pusher cannot read there: nothing to link.
        assert pusher.head(f"/v2/mine/app/blobs/{secret}").status_code == 404
        r = pusher.post(
            "/v2/mine/app/blobs/uploads/", params={"mount": secret, "from": "private/app"}
        )
        assert r.status_code == 202, r.text  # an upload instead
        assert (
            pusher.post("/v2/mine/app/blobs/uploads/", params={"mount": secret}).status_code == 202
        )
        assert not named("mine/app", secret)
        # From a repository pusher may read: a reference, no bytes copied.
        assert pusher.head(f"/v2/mine/app/blobs/{public}").status_code == 200
        assert named("mine/app", public)
        assert pusher.get(f"/v2/mine/app/blobs/{public}").status_code == 200
    with _as(registry, "reader") as reader:
        # A reader's HEAD is a read: it writes nothing, whatever the reader may read.
        assert reader.head(f"/v2/open/other/blobs/{public}").status_code == 404
        assert not named("open/other", public)
    holding = [
        key
        for key in s3_server.keys(bucket)
        if key.endswith(public.removeprefix("sha256:")) and ".refs/" not in key
    ]
    assert sorted(holding) == sorted(
        [
            f"dockyard/_dockyard/blobs/sha256/{public.removeprefix('sha256:')}",
            f"dockyard/open/app/blobs/sha256/{public.removeprefix('sha256:')}",
            f"dockyard/mine/app/blobs/sha256/{public.removeprefix('sha256:')}",
        ]
    )
