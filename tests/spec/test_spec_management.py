"""Content management category of the distribution-spec: deleting manifests, tags, blobs."""

from __future__ import annotations

import httpx
import pytest
from spec_helpers import (
    assert_error,
    get_manifest,
    list_tags,
    push_blob,
    push_image,
    random_blob,
    tag_manifest,
    unknown_digest,
)


def test_delete_manifest_by_digest(client: httpx.Client, repo: str) -> None:
    """DELETE manifests/<digest>: 202, then the manifest and all its tags are 404."""
    doomed = push_image(client, repo, "a")
    tag_manifest(client, repo, doomed, "b")
    kept = push_image(client, repo, "c")
    resp = client.delete(f"/v2/{repo}/manifests/{doomed.digest}")
    assert resp.status_code == 202, resp.text
    assert_error(get_manifest(client, repo, doomed.digest), 404, "MANIFEST_UNKNOWN")
    assert get_manifest(client, repo, doomed.digest, method="HEAD").status_code == 404
    for tag in ("a", "b"):
        assert_error(get_manifest(client, repo, tag), 404, "MANIFEST_UNKNOWN")
    assert list_tags(client, repo) == ["c"]
    assert get_manifest(client, repo, "c").content == kept.body
    assert_error(client.delete(f"/v2/{repo}/manifests/{doomed.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_tag(client: httpx.Client, repo: str) -> None:
    """DELETE manifests/<tag>: 202, only the tag goes; the manifest and other tags stay."""
    pushed = push_image(client, repo, "a")
    tag_manifest(client, repo, pushed, "b")
    resp = client.delete(f"/v2/{repo}/manifests/a")
    assert resp.status_code == 202, resp.text
    assert_error(get_manifest(client, repo, "a"), 404, "MANIFEST_UNKNOWN")
    assert list_tags(client, repo) == ["b"]
    by_digest = get_manifest(client, repo, pushed.digest)
    assert by_digest.status_code == 200
    assert by_digest.content == pushed.body
    assert get_manifest(client, repo, "b").content == pushed.body


def test_delete_blob(client: httpx.Client, repo: str) -> None:
    """DELETE blobs/<digest>: 202; afterwards GET and HEAD are 404 BLOB_UNKNOWN."""
    push_image(client, repo, "v1")
    digest = push_blob(client, repo, random_blob(40))
    resp = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert resp.status_code == 202, resp.text
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404


def test_delete_unknown_blob(client: httpx.Client, repo: str) -> None:
    """DELETE of a blob the repository does not hold: 404 BLOB_UNKNOWN."""
    push_image(client, repo, "v1")
    assert_error(client.delete(f"/v2/{repo}/blobs/{unknown_digest()}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("ref", ["digest", "nosuchtag"])
def test_delete_unknown_manifest(client: httpx.Client, repo: str, ref: str) -> None:
    """DELETE of a manifest or tag the repository does not hold: 404 MANIFEST_UNKNOWN."""
    push_image(client, repo, "v1")
    reference = unknown_digest() if ref == "digest" else ref
    resp = client.delete(f"/v2/{repo}/manifests/{reference}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")
    assert list_tags(client, repo) == ["v1"]


@pytest.mark.parametrize("kind", ["blobs/{digest}", "manifests/{digest}", "manifests/v1"])
def test_delete_in_unknown_repository(client: httpx.Client, repo: str, kind: str) -> None:
    """DELETE in a repository that does not exist: 404 NAME_UNKNOWN."""
    resp = client.delete(f"/v2/{repo}/" + kind.format(digest=unknown_digest()))
    assert_error(resp, 404, "NAME_UNKNOWN")
