"""Push category of the distribution-spec: blob uploads (monolithic, chunked, streamed),
cross-repository mounts, and manifest pushes with their validation rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Server
from spec_helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    REF_NAME,
    UUID_RE,
    assert_error,
    dumps,
    get_manifest,
    image_manifest,
    index_manifest,
    list_tags,
    location_url,
    push_blob,
    push_image,
    push_manifest,
    put_manifest,
    random_blob,
    sha256_digest,
    start_upload,
    unknown_digest,
    with_params,
)

OCTET = {"Content-Type": "application/octet-stream"}


def assert_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    """The blob ``data`` is pullable from ``repo`` with exactly those bytes."""
    resp = client.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert resp.status_code == 200, resp.text
    assert resp.content == data


def patch_chunk(client: httpx.Client, url: str, chunk: bytes, start: int) -> httpx.Response:
    """PATCH one chunk with an inclusive Content-Range starting at ``start``."""
    headers = {**OCTET, "Content-Range": f"{start}-{start + len(chunk) - 1}"}
    return client.patch(url, content=chunk, headers=headers)


# ---------------------------------------------------------------- upload sessions


def test_post_opens_session(client: httpx.Client, repo: str) -> None:
    """POST /blobs/uploads/: 202, a Location holding a UUID, unique per session, Range 0-0."""
    first = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    second = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    for resp in (first, second):
        assert resp.status_code == 202, resp.text
        assert UUID_RE.search(resp.headers["Location"]), resp.headers["Location"]
        assert resp.headers["Range"] == "0-0"
    assert location_url(first) != location_url(second)


def test_monolithic_single_post(client: httpx.Client, repo: str) -> None:
    """POST ?digest= with the whole body: 201, Location of the pullable blob, digest header."""
    data = random_blob(200)
    digest = sha256_digest(data)
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["Docker-Content-Digest"] == digest
    pulled = client.get(location_url(resp))
    assert pulled.status_code == 200
    assert pulled.content == data
    assert_blob(client, repo, data)


def test_monolithic_post_then_put(client: httpx.Client, repo: str) -> None:
    """POST then PUT ?digest= with the whole body: 201, Location pullable, digest header."""
    data = random_blob(200)
    digest = sha256_digest(data)
    url = start_upload(client, repo)
    resp = client.put(with_params(url, {"digest": digest}), content=data, headers=OCTET)
    assert resp.status_code == 201, resp.text
    pulled = client.get(location_url(resp))
    assert pulled.status_code == 200
    assert pulled.content == data
    assert_blob(client, repo, data)


def test_chunked_upload(client: httpx.Client, repo: str) -> None:
    """Chunked PATCHes in order: each 202 with Location and Range 0-<last byte>; PUT closes."""
    data = random_blob(95)
    url = start_upload(client, repo)
    offset = 0
    for size in (40, 40, 15):
        chunk = data[offset : offset + size]
        resp = patch_chunk(client, url, chunk, offset)
        assert resp.status_code == 202, resp.text
        offset += size
        assert resp.headers["Range"] == f"0-{offset - 1}"
        url = location_url(resp)
    done = client.put(with_params(url, {"digest": sha256_digest(data)}))
    assert done.status_code == 201, done.text
    assert location_url(done)
    assert_blob(client, repo, data)


@pytest.mark.parametrize("bad_start", [0, 5, 25])
def test_out_of_order_chunk(client: httpx.Client, repo: str, bad_start: int) -> None:
    """Out-of-order chunk: 416; the session still takes the right next chunk and completes."""
    data = random_blob(40)
    url = location_url(patch_chunk(client, start_upload(client, repo), data[:20], 0))
    bad = patch_chunk(client, url, data[bad_start : bad_start + 10], bad_start)
    assert bad.status_code == 416, bad.text
    status = client.get(url)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-19"
    good = patch_chunk(client, location_url(status), data[20:], 20)
    assert good.status_code == 202, good.text
    assert good.headers["Range"] == "0-39"
    done = client.put(with_params(location_url(good), {"digest": sha256_digest(data)}))
    assert done.status_code == 201, done.text
    assert_blob(client, repo, data)


def test_streamed_patch(client: httpx.Client, repo: str) -> None:
    """PATCH with chunked transfer encoding, no Content-Length/Content-Range, is appended."""
    data = random_blob(300)

    def body() -> Iterator[bytes]:
        for i in range(0, len(data), 64):
            yield data[i : i + 64]

    url = start_upload(client, repo)
    resp = client.patch(url, content=body(), headers=OCTET)
    assert "Content-Length" not in resp.request.headers
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 202, resp.text
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    done = client.put(with_params(location_url(resp), {"digest": sha256_digest(data)}))
    assert done.status_code == 201, done.text
    assert_blob(client, repo, data)


def test_get_upload_status(client: httpx.Client, repo: str) -> None:
    """GET on an upload session: 204 with Location and Range 0-<last byte received>."""
    url = start_upload(client, repo)
    fresh = client.get(url)
    assert fresh.status_code == 204
    assert fresh.content == b""
    assert location_url(fresh)
    patch_chunk(client, url, random_blob(30), 0)
    after = client.get(url)
    assert after.status_code == 204
    assert after.headers["Range"] == "0-29"
    assert location_url(after)


@pytest.mark.parametrize("with_range", [True, False])
def test_put_with_final_chunk(client: httpx.Client, repo: str, with_range: bool) -> None:
    """The final chunk may travel in the closing PUT; the digest covers the whole blob."""
    data = random_blob(60)
    url = location_url(patch_chunk(client, start_upload(client, repo), data[:25], 0))
    headers = dict(OCTET)
    if with_range:
        headers["Content-Range"] = f"25-{len(data) - 1}"
    done = client.put(
        with_params(url, {"digest": sha256_digest(data)}), content=data[25:], headers=headers
    )
    assert done.status_code == 201, done.text
    assert location_url(done)
    assert_blob(client, repo, data)


def test_delete_upload_session(client: httpx.Client, repo: str) -> None:
    """DELETE an upload session: 204; afterwards the session is 404 BLOB_UPLOAD_UNKNOWN."""
    url = start_upload(client, repo)
    patch_chunk(client, url, b"abc", 0)
    resp = client.delete(url)
    assert resp.status_code == 204, resp.text
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, url, b"def", 3), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        client.put(with_params(url, {"digest": sha256_digest(b"abc")})), 404, "BLOB_UPLOAD_UNKNOWN"
    )


def test_completed_session_is_gone(client: httpx.Client, repo: str) -> None:
    """Once the closing PUT succeeded, the session URL no longer exists (404)."""
    data = random_blob(10)
    url = start_upload(client, repo)
    done = client.put(with_params(url, {"digest": sha256_digest(data)}), content=data)
    assert done.status_code == 201, done.text
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_digest_mismatch_on_put(client: httpx.Client, repo: str) -> None:
    """Closing PUT whose digest does not match the bytes: 400 DIGEST_INVALID, nothing published."""
    push_image(client, repo, "v1")  # the repository exists, so a 404 can only mean the blob
    data = random_blob(50)
    claimed = unknown_digest()
    url = start_upload(client, repo)
    resp = client.put(with_params(url, {"digest": claimed}), content=data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/blobs/{claimed}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{sha256_digest(data)}").status_code == 404


def test_digest_mismatch_on_single_post(client: httpx.Client, repo: str) -> None:
    """Single-POST upload whose digest does not match: 400 DIGEST_INVALID, nothing published."""
    push_image(client, repo, "v1")
    data = random_blob(50)
    claimed = unknown_digest()
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data, headers=OCTET
    )
    assert_error(resp, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert client.head(f"/v2/{repo}/blobs/{sha256_digest(data)}").status_code == 404


SESSIONS = ["..%2F..%2Fx", "notauuid", "%2e%2e", "00000000-0000-0000-0000-000000000000"]


@pytest.mark.parametrize("session", SESSIONS)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_malformed_or_unknown_session(
    client: httpx.Client, repo: str, session: str, method: str
) -> None:
    """A session id never issued (malformed or unknown): 404 BLOB_UPLOAD_UNKNOWN."""
    start_upload(client, repo)  # the repository exists
    url = f"/v2/{repo}/blobs/uploads/{session}"
    params = {"digest": sha256_digest(b"abc")} if method == "PUT" else None
    content = b"abc" if method in ("PATCH", "PUT") else None
    headers = {**OCTET, "Content-Range": "0-2"} if method == "PATCH" else None
    resp = client.request(method, url, params=params, content=content, headers=headers)
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("content_range", ["abc", "0-", "-9", "0-x", "9-0", "0-9-19"])
def test_malformed_content_range(client: httpx.Client, repo: str, content_range: str) -> None:
    """A Content-Range not matching ^[0-9]+-[0-9]+$ (or inverted) is rejected: 400 or 416."""
    url = start_upload(client, repo)
    resp = client.patch(
        url, content=b"0123456789", headers={**OCTET, "Content-Range": content_range}
    )
    assert resp.status_code in (400, 416), resp.text
    assert resp.status_code != 202


# ---------------------------------------------------------------- mounts


def test_cross_repo_mount(client: httpx.Client, repo: str) -> None:
    """POST ?mount=&from= where the source has the blob: 201 and the blob is in the target."""
    source = f"{repo}-src"
    data = random_blob(80)
    digest = push_blob(client, source, data)
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}, content=b""
    )
    assert resp.status_code == 201, resp.text
    pulled = client.get(location_url(resp))
    assert pulled.status_code == 200
    assert pulled.content == data
    assert_blob(client, repo, data)


def test_cross_repo_mount_missing_blob(client: httpx.Client, repo: str) -> None:
    """A mount the registry cannot satisfy: 202 with a Location that works as an upload."""
    source = f"{repo}-src"
    push_blob(client, source, random_blob(10))
    data = random_blob(80)
    digest = sha256_digest(data)
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}, content=b""
    )
    assert resp.status_code == 202, resp.text
    done = client.put(with_params(location_url(resp), {"digest": digest}), content=data)
    assert done.status_code == 201, done.text
    assert_blob(client, repo, data)


def test_mount_without_from(client: httpx.Client, repo: str) -> None:
    """POST ?mount= without from: 201 when another repository of the registry holds the blob."""
    data = random_blob(80)
    digest = push_blob(client, f"{repo}-elsewhere", data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest}, content=b"")
    assert resp.status_code == 201, resp.text
    assert_blob(client, repo, data)


# ---------------------------------------------------------------- manifests


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_manifest_put(client: httpx.Client, repo: str, by: str) -> None:
    """Manifest PUT by tag or digest: 201, Location pullable, Docker-Content-Digest."""
    pushed = image_manifest(client, repo, layers=2)
    ref = "v1" if by == "tag" else pushed.digest
    resp = put_manifest(client, repo, ref, pushed.body, pushed.media_type)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Docker-Content-Digest"] == pushed.digest
    pulled = client.get(location_url(resp), headers={"Accept": pushed.media_type})
    assert pulled.status_code == 200
    assert pulled.content == pushed.body


@pytest.mark.parametrize("kind", ["oci-manifest", "oci-index", "docker-manifest", "docker-list"])
def test_manifest_types_accepted(client: httpx.Client, repo: str, kind: str) -> None:
    """OCI manifest/index and Docker schema2 manifest/list are all accepted and served back."""
    docker = kind.startswith("docker")
    if kind.endswith("manifest"):
        pushed = image_manifest(client, repo, docker=docker)
    else:
        pushed = index_manifest([push_image(client, repo, docker=docker)], docker=docker)
    expected = {
        "oci-manifest": OCI_MANIFEST,
        "oci-index": OCI_INDEX,
        "docker-manifest": DOCKER_MANIFEST,
        "docker-list": DOCKER_LIST,
    }[kind]
    assert pushed.media_type == expected
    resp = put_manifest(client, repo, "v1", pushed.body, pushed.media_type)
    assert resp.status_code == 201, resp.text
    got = get_manifest(client, repo, "v1")
    assert got.headers["Content-Type"] == expected
    assert got.content == pushed.body


def test_manifest_invalid_json(client: httpx.Client, repo: str) -> None:
    """A manifest body that is not JSON: 400 MANIFEST_INVALID."""
    resp = put_manifest(client, repo, "v1", b'{"schemaVersion": 2, ', OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_manifest_nested_too_deeply(client: httpx.Client, repo: str) -> None:
    """JSON nested 100k levels deep (a parser stack bomb): 400 MANIFEST_INVALID, not a 500."""
    resp = put_manifest(client, repo, "v1", b"[" * 100_000, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("version", [1, 3, "2", None])
def test_manifest_bad_schema_version(client: httpx.Client, repo: str, version: Any) -> None:
    """schemaVersion other than the integer 2: 400 MANIFEST_INVALID."""
    pushed = image_manifest(client, repo)
    manifest = dict(pushed.manifest, schemaVersion=version)
    resp = put_manifest(client, repo, "v1", dumps(manifest), OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("content_type", [OCI_INDEX, DOCKER_MANIFEST])
def test_manifest_media_type_mismatch(client: httpx.Client, repo: str, content_type: str) -> None:
    """A manifest whose mediaType field disagrees with Content-Type: 400 MANIFEST_INVALID."""
    pushed = image_manifest(client, repo)
    resp = put_manifest(client, repo, "v1", pushed.body, content_type)
    assert_error(resp, 400, "MANIFEST_INVALID")
    assert get_manifest(client, repo, "v1").status_code == 404


@pytest.mark.parametrize("missing", ["config", "layer"])
def test_manifest_blob_unknown(client: httpx.Client, repo: str, missing: str) -> None:
    """A manifest whose config or layer is missing: 400 MANIFEST_BLOB_UNKNOWN."""
    pushed = image_manifest(client, repo, layers=2)
    manifest = json.loads(pushed.body)
    ghost = {"mediaType": OCI_LAYER, "digest": unknown_digest(), "size": 12}
    if missing == "config":
        manifest["config"] = dict(manifest["config"], digest=ghost["digest"], size=12)
    else:
        manifest["layers"].append(ghost)
    resp = put_manifest(client, repo, "v1", dumps(manifest), OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_manifest_unknown(client: httpx.Client, repo: str) -> None:
    """An index referencing a manifest the registry lacks: 400 MANIFEST_BLOB_UNKNOWN."""
    known = push_image(client, repo)
    ghost = image_manifest(client, repo)  # blobs pushed, manifest itself never pushed
    index = index_manifest([known, ghost])
    resp = put_manifest(client, repo, "v1", index.body, index.media_type)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_with_missing_subject(client: httpx.Client, repo: str) -> None:
    """A manifest whose subject does not exist: 201 with OCI-Subject: <subject digest>."""
    subject = {"mediaType": OCI_MANIFEST, "digest": unknown_digest(), "size": 321}
    pushed = image_manifest(
        client, repo, artifact_type="application/vnd.example.sig.v1", subject=subject
    )
    resp = put_manifest(client, repo, pushed.digest, pushed.body, pushed.media_type)
    assert resp.status_code == 201, resp.text
    assert resp.headers["OCI-Subject"] == subject["digest"]
    assert get_manifest(client, repo, pushed.digest).content == pushed.body


def test_manifest_digest_mismatch(client: httpx.Client, repo: str) -> None:
    """PUT by a digest that is not the body's digest: 400 DIGEST_INVALID, nothing stored."""
    pushed = image_manifest(client, repo)
    wrong = unknown_digest()
    resp = put_manifest(client, repo, wrong, pushed.body, pushed.media_type)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert get_manifest(client, repo, wrong).status_code == 404
    assert get_manifest(client, repo, pushed.digest).status_code == 404


def _padded_manifest(client: httpx.Client, repo: str, total: int) -> bytes:
    """A valid image manifest padded with an annotation to exactly ``total`` bytes."""
    pushed = image_manifest(client, repo)
    manifest = dict(pushed.manifest, annotations={"pad": ""})
    base = len(json.dumps(manifest).encode())
    manifest["annotations"] = {"pad": "x" * (total - base)}
    body = json.dumps(manifest).encode()
    assert len(body) == total
    return body


def test_manifest_too_large(client: httpx.Client, repo: str) -> None:
    """A manifest over 4 MiB: 413 SIZE_INVALID, and nothing stored."""
    body = _padded_manifest(client, repo, 4 * 1024 * 1024 + 1)
    resp = put_manifest(client, repo, "big", body, OCI_MANIFEST)
    assert_error(resp, 413, "SIZE_INVALID")
    assert get_manifest(client, repo, sha256_digest(body), method="HEAD").status_code == 404


def test_manifest_at_size_limit(client: httpx.Client, repo: str) -> None:
    """A manifest of exactly 4 MiB is accepted (registries SHOULD take at least 4 MB)."""
    body = _padded_manifest(client, repo, 4 * 1024 * 1024)
    resp = put_manifest(client, repo, "big", body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text[:300]
    assert get_manifest(client, repo, "big").content == body


def test_retag_replaces(fresh_registry: Server) -> None:
    """Re-pushed tag: GET serves the new manifest; one tag in tags/list and index.json."""
    repo = "retag/app"
    with httpx.Client(base_url=fresh_registry.url, timeout=30) as client:
        old = push_image(client, repo, "latest")
        new = push_image(client, repo, "latest", layers=2)
        assert old.digest != new.digest
        got = get_manifest(client, repo, "latest")
        assert got.content == new.body
        assert got.headers["Docker-Content-Digest"] == new.digest
        assert list_tags(client, repo).count("latest") == 1
    index = json.loads((fresh_registry.root / repo / "index.json").read_text())
    tagged = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == "latest"]
    assert len(tagged) == 1, index
    assert tagged[0]["digest"] == new.digest
    assert tagged[0]["size"] == new.size
    assert tagged[0]["mediaType"] == new.media_type
    assert (fresh_registry.root / repo / "oci-layout").is_file()


def test_put_by_digest_with_tags(client: httpx.Client, repo: str) -> None:
    """PUT by digest with ?tag=a&tag=b: 201 and both tags resolve to that manifest."""
    pushed = image_manifest(client, repo)
    resp = client.put(
        f"/v2/{repo}/manifests/{pushed.digest}",
        params=[("tag", "a"), ("tag", "b")],
        content=pushed.body,
        headers={"Content-Type": pushed.media_type},
    )
    assert resp.status_code == 201, resp.text
    for tag in ("a", "b"):
        got = get_manifest(client, repo, tag)
        assert got.status_code == 200
        assert got.content == pushed.body
    assert sorted(list_tags(client, repo)) == ["a", "b"]


def test_manifest_push_idempotent(client: httpx.Client, repo: str) -> None:
    """Pushing the same manifest to the same tag twice: both 201, one tag, same bytes."""
    pushed = push_image(client, repo, "v1")
    push_manifest(client, repo, pushed, "v1")
    assert list_tags(client, repo) == ["v1"]
    assert get_manifest(client, repo, "v1").content == pushed.body
