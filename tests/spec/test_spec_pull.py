"""Pull category of the distribution-spec: blobs and manifests, GET and HEAD, Range."""

from __future__ import annotations

import httpx
import pytest
from spec_helpers import (
    Pushed,
    assert_error,
    get_manifest,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    sha256_digest,
    unknown_digest,
)


@pytest.fixture
def blob(client: httpx.Client, repo: str) -> tuple[bytes, str]:
    data = random_blob(100)
    return data, push_blob(client, repo, data)


def test_blob_get(client: httpx.Client, repo: str, blob: tuple[bytes, str]) -> None:
    """GET an existing blob: 200, exact bytes, Docker-Content-Digest, Content-Length."""
    data, digest = blob
    resp = client.get(f"/v2/{repo}/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.content == data
    assert sha256_digest(resp.content) == digest
    assert resp.headers["Docker-Content-Digest"] == digest
    assert int(resp.headers["Content-Length"]) == len(data)
    assert resp.headers["Content-Type"] == "application/octet-stream"


def test_blob_head(client: httpx.Client, repo: str, blob: tuple[bytes, str]) -> None:
    """HEAD an existing blob: 200, Docker-Content-Digest, Content-Length of the blob, no body."""
    data, digest = blob
    resp = client.head(f"/v2/{repo}/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == digest
    assert int(resp.headers["Content-Length"]) == len(data)
    assert resp.content == b""


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=95-500", 95, 99),
    ],
)
def test_blob_range(
    client: httpx.Client,
    repo: str,
    blob: tuple[bytes, str],
    range_header: str,
    start: int,
    end: int,
) -> None:
    """A single satisfiable Range on blob GET: 206, Content-Range, exactly those bytes."""
    data, digest = blob
    resp = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": range_header})
    assert resp.status_code == 206, resp.text
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert resp.content == data[start : end + 1]
    assert int(resp.headers["Content-Length"]) == end - start + 1


@pytest.mark.parametrize("range_header", ["bytes=100-", "bytes=200-300"])
def test_blob_range_past_end(
    client: httpx.Client, repo: str, blob: tuple[bytes, str], range_header: str
) -> None:
    """A Range starting at or past the blob's end is unsatisfiable: 416 (RFC 9110 15.5.17)."""
    _, digest = blob
    resp = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": range_header})
    assert resp.status_code == 416


def _pushed_kinds(client: httpx.Client, repo: str, kind: str) -> Pushed:
    if kind == "oci-manifest":
        return image_manifest(client, repo, layers=2)
    if kind == "docker-manifest":
        return image_manifest(client, repo, layers=2, docker=True)
    child = push_image(client, repo, docker=kind == "docker-list")
    return index_manifest([child], docker=kind == "docker-list")


KINDS = ["oci-manifest", "oci-index", "docker-manifest", "docker-list"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("by", ["tag", "digest"])
def test_manifest_get(client: httpx.Client, repo: str, kind: str, by: str) -> None:
    """GET manifest by tag/digest: 200, Content-Type = mediaType, digest header, exact bytes."""
    pushed = push_manifest(client, repo, _pushed_kinds(client, repo, kind), "v1")
    resp = get_manifest(client, repo, "v1" if by == "tag" else pushed.digest)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == pushed.media_type
    assert resp.headers["Docker-Content-Digest"] == pushed.digest
    assert resp.content == pushed.body


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_manifest_head(client: httpx.Client, repo: str, by: str) -> None:
    """HEAD a manifest: 200, Content-Type, Docker-Content-Digest, Content-Length, no body."""
    pushed = push_image(client, repo, "v1")
    resp = get_manifest(client, repo, "v1" if by == "tag" else pushed.digest, method="HEAD")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == pushed.media_type
    assert resp.headers["Docker-Content-Digest"] == pushed.digest
    assert int(resp.headers["Content-Length"]) == pushed.size
    assert resp.content == b""


def test_manifest_pushed_by_digest_pullable_by_digest(client: httpx.Client, repo: str) -> None:
    """A manifest pushed by digest only is served by digest with its exact bytes."""
    pushed = push_image(client, repo)
    resp = get_manifest(client, repo, pushed.digest)
    assert resp.status_code == 200
    assert resp.content == pushed.body
    assert resp.headers["Docker-Content-Digest"] == pushed.digest


def test_unknown_blob(client: httpx.Client, repo: str) -> None:
    """GET/HEAD of a blob the (existing) repository lacks: 404 BLOB_UNKNOWN."""
    push_image(client, repo, "v1")
    digest = unknown_digest()
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 404
    assert head.content == b""


@pytest.mark.parametrize("ref", ["nosuchtag", "digest"])
def test_unknown_manifest(client: httpx.Client, repo: str, ref: str) -> None:
    """GET/HEAD of a manifest the (existing) repository lacks: 404 MANIFEST_UNKNOWN."""
    push_image(client, repo, "v1")
    reference = unknown_digest() if ref == "digest" else ref
    assert_error(get_manifest(client, repo, reference), 404, "MANIFEST_UNKNOWN")
    head = get_manifest(client, repo, reference, method="HEAD")
    assert head.status_code == 404
    assert head.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "blobs/{digest}",
        "manifests/latest",
        "manifests/{digest}",
        "tags/list",
        "referrers/{digest}",
    ],
)
def test_unknown_repository(client: httpx.Client, repo: str, path: str) -> None:
    """Requests against a repository that was never pushed to: 404 NAME_UNKNOWN."""
    url = f"/v2/{repo}/" + path.format(digest=unknown_digest())
    assert_error(client.get(url, headers={"Accept": "*/*"}), 404, "NAME_UNKNOWN")
    if not path.startswith(("tags", "referrers")):
        assert client.head(url).status_code == 404


def test_manifest_not_visible_across_repositories(client: httpx.Client, repo: str) -> None:
    """A manifest pushed to repo A cannot be fetched by digest through repo B."""
    other = f"{repo}-other"
    pushed = push_image(client, repo, "v1")
    push_image(client, other, "v1")
    assert get_manifest(client, repo, pushed.digest).status_code == 200
    assert_error(get_manifest(client, other, pushed.digest), 404, "MANIFEST_UNKNOWN")
    assert get_manifest(client, other, pushed.digest, method="HEAD").status_code == 404
    # and the tag namespace is per-repository too
    assert get_manifest(client, other, "v1").content != pushed.body
