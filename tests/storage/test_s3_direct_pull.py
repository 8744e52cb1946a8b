"""Blob GETs on S3 answered directly (``storage.direct_reads``): the server sends the
presigned GET of the bytes at once (with dedupe, together with a HEAD of the
repository's reference) and serves it only when the answers prove the blob is there and
good; otherwise the full path answers.

The server reaches moto through a proxy that records each request it forwards, so a
test sees what the server asked of the bucket. What a user relies on: a pull of a
checked blob costs the bucket those one or two requests and nothing more; a blob
deleted (through the API or behind dockyard's back) is 404 on the very next GET; bytes
changed in the bucket are never served, whichever path would have served them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server
from round_robin_proxy import RoundRobinProxy
from s3_helpers import S3Registry, S3Server, s3_config, start_s3_registry
from spec_helpers import push_blob, random_blob, sha256_digest

PREFIX = "dockyard"
MiB = 1024 * 1024


@pytest.fixture
def recorder(s3_server: S3Server) -> Iterator[RoundRobinProxy]:
    """A proxy in front of moto that records the first line of each request."""
    proxy = RoundRobinProxy([int(s3_server.endpoint.rsplit(":", 1)[1])])
    yield proxy
    proxy.close()


def _registry(
    s3_server: S3Server,
    recorder: RoundRobinProxy,
    tmp_path: Path,
    servers: list[Server],
    *,
    dedupe: bool = True,
) -> S3Registry:
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    config["storage"]["dedupe"] = dedupe
    config["storage"]["storageDriver"]["regionendpoint"] = recorder.host
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    return server


def _asked(recorder: RoundRobinProxy, since: int, hexd: str) -> list[str]:
    """Method and key of each request about the digest ``hexd`` since ``since``."""
    asked = []
    for line in recorder.requests[since:]:
        method, target, _ = line.split(" ")
        path = target.split("?", 1)[0]
        if hexd in path:
            asked.append(f"{method} {path.split('/', 2)[2]}")
    return asked


def _gets(client: httpx.Client, repo: str, digest: str, data: bytes, times: int = 2) -> None:
    for _ in range(times):
        resp = client.get(f"/v2/{repo}/blobs/{digest}")
        assert resp.status_code == 200 and resp.content == data, resp.status_code
        assert resp.headers["Docker-Content-Digest"] == digest
        assert int(resp.headers["Content-Length"]) == len(data)


def test_a_pull_asks_the_bucket_for_the_bytes_and_the_name_at_once_and_nothing_more(
    s3_server: S3Server, recorder: RoundRobinProxy, tmp_path: Path, servers: list[Server]
) -> None:
    """With dedupe, each GET of a pushed blob is one GET of the shared copy and one HEAD
    of the repository's reference (both presigned, sent together): no look-up before
    them. Without dedupe, the GET of the repository's own object alone. Range requests
    and HEADs keep the full path."""
    data = random_blob(MiB + 7)
    digest = sha256_digest(data)
    hexd = digest.removeprefix("sha256:")
    server = _registry(s3_server, recorder, tmp_path / "dedupe", servers)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for repo in ("a/app", "b/app"):
            push_blob(client, repo, data)
        since = len(recorder.requests)
        _gets(client, "a/app", digest, data, times=3)
        assert sorted(_asked(recorder, since, hexd)) == [
            *3 * [f"GET {PREFIX}/_dockyard/blobs/sha256/{hexd}"],
            *3 * [f"HEAD {PREFIX}/a/app/blobs/sha256/{hexd}"],
        ]
        ranged = client.get(f"/v2/b/app/blobs/{digest}", headers={"Range": "bytes=5-9"})
        assert ranged.status_code == 206 and ranged.content == data[5:10]

    server = _registry(s3_server, recorder, tmp_path / "plain", servers, dedupe=False)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        push_blob(client, "c/app", data)
        since = len(recorder.requests)
        _gets(client, "c/app", digest, data, times=3)
        assert _asked(recorder, since, hexd) == 3 * [f"GET {PREFIX}/c/app/blobs/sha256/{hexd}"]
    assert "Traceback" not in server.output()


def test_a_name_deleted_after_direct_pulls_is_404_on_the_next_get(
    s3_server: S3Server, recorder: RoundRobinProxy, tmp_path: Path, servers: list[Server]
) -> None:
    """A blob pulled directly, then its name removed: through the API (DELETE) and
    behind dockyard's back (the reference object deleted in the bucket). The next GET of
    each is 404 BLOB_UNKNOWN, as before direct reads, while the repository that still
    names the shared copy keeps pulling it; a repository that does not exist is still
    NAME_UNKNOWN."""
    server = _registry(s3_server, recorder, tmp_path, servers)
    data = random_blob(2 * MiB + 3)
    digest = sha256_digest(data)
    raw = s3_server.client()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for repo in ("gone/api", "gone/hand", "kept/app"):
            push_blob(client, repo, data)
            _gets(client, repo, digest, data)
        assert client.delete(f"/v2/gone/api/blobs/{digest}").status_code == 202
        key = f"{PREFIX}/gone/hand/blobs/sha256/{digest.removeprefix('sha256:')}"
        raw.delete_object(Bucket=server.bucket, Key=key)
        for repo in ("gone/api", "gone/hand"):
            resp = client.get(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 404, (repo, resp.status_code)
            assert resp.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        _gets(client, "kept/app", digest, data)
        resp = client.get(f"/v2/never/app/blobs/{digest}")
        assert resp.status_code == 404 and resp.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("dedupe", [True, False], ids=["dedupe", "full-copies"])
def test_bytes_changed_in_the_bucket_after_direct_pulls_are_never_served(
    s3_server: S3Server,
    recorder: RoundRobinProxy,
    tmp_path: Path,
    servers: list[Server],
    dedupe: bool,
) -> None:
    """The object holding a blob's bytes is overwritten behind dockyard's back with
    other bytes of the same size, after direct pulls: the GET's new ETag does not match
    the verified stamp, so the full path hashes it, quarantines it, and answers 404; a
    push of the good bytes serves again."""
    server = _registry(s3_server, recorder, tmp_path, servers, dedupe=dedupe)
    data = random_blob(MiB + 11)
    digest = sha256_digest(data)
    hexd = digest.removeprefix("sha256:")
    holder = (
        f"{PREFIX}/_dockyard/blobs/sha256/{hexd}"
        if dedupe
        else f"{PREFIX}/x/app/blobs/sha256/{hexd}"
    )
    raw = s3_server.client()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        push_blob(client, "x/app", data)
        _gets(client, "x/app", digest, data)
        raw.put_object(Bucket=server.bucket, Key=holder, Body=random_blob(len(data)))
        bad = client.get(f"/v2/x/app/blobs/{digest}")
        assert bad.status_code == 404, bad.status_code
        assert bad.json()["errors"][0]["detail"]["reason"] == "quarantined"
        assert client.get(f"/v2/x/app/blobs/{digest}").status_code == 404
        push_blob(client, "x/app", data)
        _gets(client, "x/app", digest, data)
    assert "Traceback" not in server.output()
