"""Encoded slashes in repository names are refused with 400 NAME_INVALID on every route.

``team%2Fapp`` is one path segment holding a slash, not the name ``team/app``: a name
reaching storage through it would have been checked (by the router, by access globs)
as something else than what is served. In a query string, by contrast, ``%2F`` is how
every client writes a slash (Go's ``url.Values`` encodes ``from=team%2Fapp``), so a
``from`` is validated after one decoding, like any query value.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import Server
from spec_helpers import (
    assert_error,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    raw_request,
    start_upload,
)

#: (method, path after the name), one per route that takes a repository name.
ROUTES = [
    ("GET", "/tags/list"),
    ("GET", "/manifests/v1"),
    ("HEAD", "/manifests/v1"),
    ("PUT", "/manifests/v1"),
    ("DELETE", "/manifests/v1"),
    ("GET", "/blobs/{blob}"),
    ("HEAD", "/blobs/{blob}"),
    ("DELETE", "/blobs/{blob}"),
    ("GET", "/referrers/{digest}"),
    ("POST", "/blobs/uploads/"),
    ("POST", "/blobs/uploads"),
    ("GET", "/blobs/uploads/{session}"),
    ("PATCH", "/blobs/uploads/{session}"),
    ("PUT", "/blobs/uploads/{session}?digest={blob}"),
    ("DELETE", "/blobs/uploads/{session}"),
]


@pytest.fixture(scope="module")
def existing(registry: Server) -> dict[str, str]:
    """``enc/app`` with a tagged image, a blob and an open session: what a bypass would hit."""
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        image = image_manifest(c, "enc/app")
        push_manifest(c, "enc/app", image, "v1")
        session = start_upload(c, "enc/app").rsplit("/", 1)[1]
        return {"blob": image.blobs[0], "digest": image.digest, "session": session}


@pytest.mark.parametrize("encoded", ["enc%2Fapp", "enc%2fapp", "enc%2F%2Fapp"])
@pytest.mark.parametrize(("method", "rest"), ROUTES)
def test_encoded_slash_in_name_is_name_invalid(
    registry: Server, existing: dict[str, str], encoded: str, method: str, rest: str
) -> None:
    path = f"/v2/{encoded}" + rest.format(**existing)
    body = b"{}" if method in ("PUT", "PATCH") else None
    r = raw_request(registry.url, method, path, body=body)
    if method == "HEAD":
        assert r.status_code == 400, f"{method} {path}: {r.status_code}"
    else:
        assert_error(r, 400, "NAME_INVALID")
    # Nothing was done on enc/app's behalf: the tag, the blob and the session are intact.
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert c.get("/v2/enc/app/tags/list").json()["tags"] == ["v1"]
        assert c.head(f"/v2/enc/app/blobs/{existing['blob']}").status_code == 200
        assert c.get(f"/v2/enc/app/blobs/uploads/{existing['session']}").status_code == 204


def test_encoded_slash_in_a_nested_name(registry: Server, existing: dict[str, str]) -> None:
    """Deeper in the name, and with the plain name's tags a bypass would list."""
    assert_error(raw_request(registry.url, "GET", "/v2/enc/app%2Fx/tags/list"), 400, "NAME_INVALID")
    r = raw_request(registry.url, "GET", "/v2/enc/app/tags/list")
    assert r.status_code == 200


def test_mount_from_is_checked_after_query_decoding(registry: Server, repo: str) -> None:
    """``from=team%2Fapp`` is a plain slash and mounts; a name that is malformed once
    decoded (a double-encoded slash, upper case) is 400 NAME_INVALID; a malformed
    ``mount`` digest is 400 DIGEST_INVALID."""
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        source = f"{repo}-src"
        blob = push_blob(c, source, random_blob(128))
    encoded_source = source.replace("/", "%2F")
    digest = blob.replace(":", "%3A")

    r = raw_request(
        registry.url, "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={encoded_source}"
    )
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{blob}"

    for bad in (source.replace("/", "%252F"), source.upper(), f"{source}/..", "%2F" + source):
        target = f"{repo}-{len(bad)}"
        r = raw_request(
            registry.url, "POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from={bad}"
        )
        assert_error(r, 400, "NAME_INVALID")
        with httpx.Client(base_url=registry.url, timeout=30) as c:
            assert c.get(f"/v2/{target}/tags/list").status_code == 404  # nothing created

    r = raw_request(
        registry.url, "POST", f"/v2/{repo}/blobs/uploads/?mount=sha256%2Fabc&from={source}"
    )
    assert_error(r, 400, "DIGEST_INVALID")
