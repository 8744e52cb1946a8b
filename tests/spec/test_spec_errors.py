"""Error handling across the API: the spec's JSON error body, name/digest/tag validation,
unknown routes and methods, and path traversal that must never touch disk."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import Server
from spec_helpers import (
    OCI_MANIFEST,
    Pushed,
    assert_error,
    error_codes,
    get_manifest,
    image_manifest,
    list_tags,
    push_image,
    raw_request,
    sha256_digest,
    start_upload,
    unknown_digest,
    with_params,
)


@pytest.fixture(scope="module")
def existing(registry: Server) -> Iterator[tuple[httpx.Client, str, Pushed]]:
    """A repository of the session registry holding one tagged image."""
    repo = f"errors/{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        yield client, repo, push_image(client, repo, "v1")


# ---------------------------------------------------------------- error body shape


def test_api_version_check(client: httpx.Client) -> None:
    """GET /v2/: 200 with Docker-Distribution-API-Version: registry/2.0."""
    resp = client.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/{repo}/blobs/{unknown}", 404),
        ("GET", "/v2/{repo}/manifests/nosuchtag", 404),
        ("GET", "/v2/{repo}/manifests/{unknown}", 404),
        ("DELETE", "/v2/{repo}/blobs/{unknown}", 404),
        ("GET", "/v2/{repo}/blobs/uploads/{uuid}", 404),
        ("GET", "/v2/nosuch/{uuid}/tags/list", 404),
        ("GET", "/v2/{repo}/blobs/sha256:nothex", 400),
        ("PUT", "/v2/{repo}/manifests/v2", 400),
        ("GET", "/v2/{repo}/tags/list?n=-3", 400),
        ("GET", "/v2/BAD/blobs/{unknown}", 400),
    ],
)
def test_error_body_shape(
    existing: tuple[httpx.Client, str, Pushed], method: str, path: str, status: int
) -> None:
    """Every error is JSON {"errors": [{"code", "message", ...}]} with the right status."""
    client, repo, _ = existing
    url = path.format(repo=repo, unknown=unknown_digest(), uuid=uuid.uuid4())
    content = b"not json" if method == "PUT" else None
    headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else None
    resp = client.request(method, url, content=content, headers=headers)
    assert resp.status_code == status, resp.text
    for err in resp.json()["errors"]:
        assert set(err) >= {"code", "message"}, err
    assert error_codes(resp)


# ---------------------------------------------------------------- repository names

BAD_NAMES = [
    "a/../b",
    "a/%2e%2e/b",
    "%2e%2e/%2e%2e/etc",
    "a%2F..%2F..%2Fb",
    "..",
    "Upper/case",
    "/leading",
    "%2Fetc",
    "a//b",
    "trailing/",
    "_blobstore",
    "-dash",
    "a..b",
    "a___b",
    "a" * 256,
    "/".join(["x" * 100, "y" * 100, "z" * 60]),
]

NAME_ENDPOINTS = [
    ("GET", "blobs/{digest}"),
    ("HEAD", "blobs/{digest}"),
    ("DELETE", "blobs/{digest}"),
    ("GET", "manifests/latest"),
    ("PUT", "manifests/latest"),
    ("DELETE", "manifests/{digest}"),
    ("POST", "blobs/uploads/"),
    ("GET", "blobs/uploads/{session}"),
    ("GET", "tags/list"),
    ("GET", "referrers/{digest}"),
]


@pytest.mark.parametrize(("method", "endpoint"), NAME_ENDPOINTS)
@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: n[:24])
def test_invalid_name(registry: Server, name: str, method: str, endpoint: str) -> None:
    """A repository name off the spec grammar (or over 255 chars): 400 NAME_INVALID."""
    path = f"/v2/{name}/" + endpoint.format(digest=unknown_digest(), session=uuid.uuid4())
    body = b'{"schemaVersion": 2}' if method == "PUT" else None
    headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else None
    resp = raw_request(registry.url, method, path, body=body, headers=headers)
    if method == "HEAD":
        assert resp.status_code == 400
    else:
        assert_error(resp, 400, "NAME_INVALID")


def test_valid_names_accepted(client: httpx.Client) -> None:
    """Names using every separator the grammar allows are accepted."""
    tail = uuid.uuid4().hex[:8]
    for name in (f"a.b_c__d-e--f/{tail}", f"x{tail}/y/z/0-9", f"{tail}"):
        push_image(client, name, "v1", layers=0)
        assert list_tags(client, name) == ["v1"]


# ---------------------------------------------------------------- digests

BAD_DIGESTS = [
    "sha256:xyz",
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "A" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256:../../etc",
    "sha256:",
    ":" + "a" * 64,
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_invalid_digest_blob(
    existing: tuple[httpx.Client, str, Pushed], digest: str, method: str
) -> None:
    """A malformed digest in blobs/<digest>: 400 DIGEST_INVALID."""
    client, repo, _ = existing
    resp = client.request(method, f"/v2/{repo}/blobs/{quote(digest, safe=':')}")
    if method == "HEAD":
        assert resp.status_code == 400
    else:
        assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_invalid_digest_upload(existing: tuple[httpx.Client, str, Pushed], digest: str) -> None:
    """A malformed ?digest= on the closing PUT or a single POST: 400 DIGEST_INVALID."""
    client, repo, _ = existing
    url = start_upload(client, repo)
    resp = client.put(with_params(url, {"digest": digest}), content=b"data")
    assert_error(resp, 400, "DIGEST_INVALID")
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"data")
    assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_invalid_digest_mount(existing: tuple[httpx.Client, str, Pushed], digest: str) -> None:
    """A malformed ?mount= digest: 400 DIGEST_INVALID."""
    client, repo, _ = existing
    resp = client.post(
        f"/v2/{repo}-target/blobs/uploads/", params={"mount": digest, "from": repo}, content=b""
    )
    assert_error(resp, 400, "DIGEST_INVALID")


# ---------------------------------------------------------------- tags

BAD_TAGS = ["x" * 129, "t" * 200, "-leading", ".leading", "bad!tag", "with%20space"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
@pytest.mark.parametrize("tag", BAD_TAGS, ids=lambda t: t[:16])
def test_invalid_tag(existing: tuple[httpx.Client, str, Pushed], tag: str, method: str) -> None:
    """A manifest reference that is neither a digest nor a valid tag: a PUT is 400
    MANIFEST_INVALID; GET, HEAD and DELETE look for a manifest that cannot exist, so 404
    MANIFEST_UNKNOWN (what the conformance suite and zot expect)."""
    client, repo, pushed = existing
    content = pushed.body if method == "PUT" else None
    headers = {"Content-Type": pushed.media_type, "Accept": pushed.media_type}
    resp = client.request(method, f"/v2/{repo}/manifests/{tag}", content=content, headers=headers)
    if method == "PUT":
        assert_error(resp, 400, "MANIFEST_INVALID")
    elif method == "HEAD":
        assert resp.status_code == 404
    else:
        assert_error(resp, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("tag", BAD_TAGS[:4], ids=lambda t: t[:16])
def test_invalid_tag_param(existing: tuple[httpx.Client, str, Pushed], tag: str) -> None:
    """A malformed ?tag= on a PUT by digest: 400 MANIFEST_INVALID."""
    client, repo, pushed = existing
    resp = client.put(
        f"/v2/{repo}/manifests/{pushed.digest}",
        params=[("tag", "ok"), ("tag", tag)],
        content=pushed.body,
        headers={"Content-Type": pushed.media_type},
    )
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_longest_tag_accepted(client: httpx.Client, repo: str) -> None:
    """A tag of exactly 128 characters matching the grammar is valid."""
    tag = "_" + "a" * 127
    pushed = push_image(client, repo, tag)
    assert get_manifest(client, repo, tag).content == pushed.body


# ---------------------------------------------------------------- routes and methods


@pytest.mark.parametrize("path", ["/v2/{repo}/nothing/here", "/v2/_nothing", "/v2/{repo}/blobs"])
def test_unknown_route(existing: tuple[httpx.Client, str, Pushed], path: str) -> None:
    """An unknown route under /v2/: 404 with a JSON errors body."""
    client, repo, _ = existing
    resp = client.get(path.format(repo=repo))
    assert resp.status_code == 404
    assert error_codes(resp)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v2/{repo}/tags/list"),
        ("DELETE", "/v2/{repo}/tags/list"),
        ("POST", "/v2/{repo}/manifests/v1"),
        ("PATCH", "/v2/{repo}/manifests/v1"),
        ("PUT", "/v2/{repo}/blobs/{digest}"),
        ("POST", "/v2/{repo}/referrers/{digest}"),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/"),
    ],
)
def test_wrong_method(existing: tuple[httpx.Client, str, Pushed], method: str, path: str) -> None:
    """A known route with a method it does not serve: 405 with a JSON errors body."""
    client, repo, pushed = existing
    url = path.format(repo=repo, digest=pushed.digest)
    resp = client.request(method, url, content=b"{}")
    assert resp.status_code == 405, resp.text
    assert error_codes(resp)


# ---------------------------------------------------------------- traversal


def _snapshot(top: Path, root: Path) -> set[Path]:
    """Every path under ``top`` except the registry root itself and server logs."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        if here == root:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            found.add(here / name)
    return {p for p in found if p != root and not p.name.startswith("server-")}


def test_traversal_writes_nothing_outside_root(fresh_registry: Server) -> None:
    """Traversal in names, sessions, digests, tags is refused; nothing lands outside root."""
    root = fresh_registry.root
    top = root.parent
    before = _snapshot(top, root)
    marker = f"pwned{uuid.uuid4().hex[:8]}"
    url = fresh_registry.url
    data = b"payload"
    digest = sha256_digest(data)
    with httpx.Client(base_url=url, timeout=30) as client:
        repo = "victim/app"
        pushed = image_manifest(client, repo)
        attempts = [
            ("POST", f"/v2/..%2F..%2F{marker}/blobs/uploads/?digest={digest}"),
            ("POST", f"/v2/a/../../{marker}/blobs/uploads/?digest={digest}"),
            ("PUT", f"/v2/%2e%2e/%2e%2e/{marker}/manifests/v1"),
            ("PUT", f"/v2/{repo}/manifests/..%2F..%2F..%2F{marker}"),
            ("PUT", f"/v2/{repo}/blobs/uploads/..%2F..%2F..%2F{marker}?digest={digest}"),
            ("PATCH", f"/v2/{repo}/blobs/uploads/..%2F..%2F..%2F{marker}"),
            ("PUT", f"/v2/{repo}/manifests/sha256:..%2F..%2F..%2F{marker}"),
            ("DELETE", f"/v2/{repo}/blobs/sha256:..%2F..%2F..%2F{marker}"),
        ]
        for method, path in attempts:
            body = pushed.body if "manifests" in path else data
            resp = raw_request(url, method, path, body=body)
            assert 400 <= resp.status_code < 500, (method, path, resp.status_code)
            assert error_codes(resp)
        session = start_upload(client, repo)
        resp = client.put(
            with_params(session, {"digest": f"sha256:../../../{marker}"}), content=data
        )
        assert_error(resp, 400, "DIGEST_INVALID")
    assert _snapshot(top, root) == before
    leaked = [p for p in top.parent.rglob(f"*{marker}*")]
    assert leaked == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "reference", [".INVALID_MANIFEST_NAME", "sha256:totallywrong", "sha256:" + "a" * 63]
)
def test_manifest_reference_that_cannot_exist(
    existing: tuple[httpx.Client, str, Pushed], reference: str, method: str
) -> None:
    """The conformance suite's references: unknown on a read or DELETE (404
    MANIFEST_UNKNOWN), refused on a PUT (400), and on a repository that does not exist the
    read still says so (404 NAME_UNKNOWN)."""
    client, repo, pushed = existing
    content = pushed.body if method == "PUT" else None
    headers = {"Content-Type": pushed.media_type, "Accept": pushed.media_type}
    resp = client.request(
        method, f"/v2/{repo}/manifests/{reference}", content=content, headers=headers
    )
    if method == "PUT":
        code = "DIGEST_INVALID" if ":" in reference else "MANIFEST_INVALID"
        assert_error(resp, 400, code)
    elif method == "HEAD":
        assert resp.status_code == 404
    else:
        assert_error(resp, 404, "MANIFEST_UNKNOWN")
        missing = client.request(method, f"/v2/{repo}-none/manifests/{reference}")
        assert_error(missing, 404, "NAME_UNKNOWN")
    assert client.get(f"/v2/{repo}/manifests/{pushed.digest}").status_code == 200
