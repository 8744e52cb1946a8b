"""A hostile or failing upstream must never get bad content published, or hang a client.

The upstream here is ``broken_upstream.BrokenUpstream``, written for these tests: it
serves wrong bytes under a digest, lies about a manifest's digest, and stops a blob half
way until the test opens a gate (which shows the client's stream runs ahead of the fetch,
and that concurrent clients share one fetch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from auth_helpers import client_for, serving, write_htpasswd
from broken_upstream import Blob, BrokenUpstream, digest_of
from conftest import Server
from images import blob_path
from spec_helpers import MANIFEST_ACCEPT, assert_error
from sync_helpers import sync_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def broken() -> Iterator[BrokenUpstream]:
    upstream = BrokenUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def _config(tmp_path: Path, upstream: BrokenUpstream, **top: object) -> Path:
    entry = {"urls": [upstream.url], "onDemand": True, "content": [{"prefix": "apps/**"}]}
    return sync_config(tmp_path / "config.json", [entry], **top)


@pytest.fixture
def mirror(tmp_path: Path, broken: BrokenUpstream) -> Iterator[Server]:
    with serving(tmp_path / "data", _config(tmp_path, broken)) as server:
        yield server


def _manifest(config: bytes, layer: bytes) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(layer),
                "size": len(layer),
            }
        ],
    }
    return json.dumps(doc, indent=2).encode()


def test_wrong_blob_bytes_are_refused(broken: BrokenUpstream, mirror: Server) -> None:
    """An upstream serving other bytes under a digest: the client gets an error, never a
    whole 200 body; nothing is stored under that digest; the refusal is logged."""
    good = os.urandom(300_000)
    digest = digest_of(good)
    broken.blobs[("apps/bad", digest)] = Blob(os.urandom(len(good)))
    with httpx.Client(base_url=mirror.url, timeout=10) as c:
        for _ in range(2):
            try:
                resp = c.get(f"/v2/apps/bad/blobs/{digest}")
            except httpx.HTTPError:
                pass  # cut short of Content-Length: the error the client must see
            else:
                assert resp.status_code != 200, "wrong bytes were served as the blob"
    assert not blob_path(mirror.root / "apps/bad", digest).exists()
    uploads = mirror.root / "apps/bad" / ".uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "a partial fetch was left"
    assert "refused" in mirror.output() and digest in mirror.output()


def test_lying_manifest_digest_is_refused(broken: BrokenUpstream, mirror: Server) -> None:
    """A manifest whose bytes do not hash to the digest the upstream announces, or to the
    digest asked for, is not stored: 404, and nothing in the repository."""
    body = _manifest(b"{}", b"layer")
    liar = digest_of(b"something else")
    broken.add_manifest("apps/liar", "v1", body, OCI_MANIFEST, announced=liar)
    broken.manifests[("apps/liar", liar)] = (body, OCI_MANIFEST, liar)
    with httpx.Client(base_url=mirror.url, timeout=10) as c:
        assert_error(
            c.get("/v2/apps/liar/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}),
            404,
            "NAME_UNKNOWN",
        )
        assert c.get(f"/v2/apps/liar/manifests/{liar}").status_code == 404
    assert not (mirror.root / "apps/liar" / "blobs").exists() or not any(
        (mirror.root / "apps/liar" / "blobs").rglob("*")
    )
    assert "refused" in mirror.output()


def test_manifest_over_4_mib_is_refused(broken: BrokenUpstream, mirror: Server) -> None:
    """The mirror reads at most 4 MiB of a manifest; a larger one is refused, not stored."""
    huge = json.dumps({"schemaVersion": 2, "pad": "x" * (5 * 1024 * 1024)}).encode()
    broken.add_manifest("apps/huge", "v1", huge, OCI_MANIFEST)
    with httpx.Client(base_url=mirror.url, timeout=10) as c:
        resp = c.get("/v2/apps/huge/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert resp.status_code == 404
    assert not (mirror.root / "apps/huge").exists()


def test_blob_streams_before_the_fetch_ends_and_is_fetched_once(
    broken: BrokenUpstream, mirror: Server
) -> None:
    """The upstream sends half a blob and waits. Four clients each receive bytes meanwhile
    (they could not if dockyard waited for the whole blob), the upstream saw one GET, and
    once the gate opens every client gets the exact blob, which is then stored."""
    data = os.urandom(6 * 1024 * 1024)
    digest = digest_of(data)
    broken.blobs[("apps/slow", digest)] = Blob(data, pause_after=3 * 1024 * 1024)
    with ExitStack() as stack:
        c = stack.enter_context(httpx.Client(base_url=mirror.url, timeout=20))
        streams = []
        for _ in range(4):
            resp = stack.enter_context(c.stream("GET", f"/v2/apps/slow/blobs/{digest}"))
            assert resp.status_code == 200
            assert resp.headers["Content-Length"] == str(len(data))
            chunks = resp.iter_bytes()
            first = next(chunks)
            assert first and data.startswith(first)
            streams.append((first, chunks))
        assert broken.requests[f"GET blob {digest}"] == 1
        broken.open_gate()
        for first, chunks in streams:
            assert first + b"".join(chunks) == data
    assert blob_path(mirror.root / "apps/slow", digest).read_bytes() == data
    with httpx.Client(base_url=mirror.url, timeout=20) as c:
        assert c.get(f"/v2/apps/slow/blobs/{digest}").content == data
    assert broken.requests[f"GET blob {digest}"] == 1


def test_on_demand_needs_read_on_the_local_name(tmp_path: Path, broken: BrokenUpstream) -> None:
    """Access control applies before any fetch: a caller without ``read`` on the local name
    is refused and the upstream is never asked; one with ``read`` gets the content."""
    layer = os.urandom(1000)
    body = _manifest(b"{}", layer)
    broken.add_manifest("apps/private", "v1", body, OCI_MANIFEST)
    broken.blobs[("apps/private", digest_of(layer))] = Blob(layer)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"reader": "r-pw", "other": "o-pw"})
    access = {
        "repositories": {"apps/**": {"policies": [{"users": ["reader"], "actions": ["read"]}]}}
    }
    config = _config(
        tmp_path,
        broken,
        http={"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": access},
    )
    with serving(tmp_path / "data", config) as server:
        for who, password in ((None, None), ("other", "o-pw")):
            with client_for(server, who, password) as c:
                assert c.get("/v2/apps/private/manifests/v1").status_code in (401, 403)
                assert c.get(f"/v2/apps/private/blobs/{digest_of(layer)}").status_code in (
                    401,
                    403,
                )
        assert sum(broken.requests.values()) == 0, broken.requests
        with client_for(server, "reader", "r-pw") as c:
            got = c.get("/v2/apps/private/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
            assert got.status_code == 200 and got.content == body
            assert c.get(f"/v2/apps/private/blobs/{digest_of(layer)}").content == layer
