"""Small client-side helpers for the distribution-spec conformance tests.

Everything here talks plain HTTP to the registry, the way a registry client would; nothing
is imported from the server package.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# What a real client sends when pulling: every manifest type it understands.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

REF_NAME = "org.opencontainers.image.ref.name"
ERROR_CODE_RE = re.compile(r"^[A-Z_]+$")
UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def sha256_digest(data: bytes) -> str:
    """The OCI digest string (``sha256:<hex>``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_blob(size: int = 64) -> bytes:
    """``size`` random bytes: content no other test (or repo) can already hold."""
    return os.urandom(size)


def unknown_digest() -> str:
    """A well-formed digest of content nobody has pushed."""
    return sha256_digest(b"never pushed " + uuid.uuid4().bytes)


def location_url(resp: httpx.Response) -> str:
    """The response's Location resolved against the request URL (RFC 7231 7.1.2)."""
    location = resp.headers.get("Location")
    assert location, f"no Location header on {resp.status_code} response: {resp.headers}"
    return str(resp.request.url.join(location))


def with_params(url: str, params: list[tuple[str, str]] | dict[str, str]) -> str:
    """``url`` with extra query parameters, keeping any the registry put there."""
    items = list(params.items()) if isinstance(params, dict) else params
    return str(httpx.URL(url).copy_merge_params(tuple(items)))


def error_codes(resp: httpx.Response) -> list[str]:
    """The ``code`` of every entry in a spec error body (fails if it is not one)."""
    ctype = resp.headers.get("Content-Type", "")
    assert "json" in ctype, f"error body is not JSON (Content-Type {ctype!r}): {resp.text!r}"
    try:
        body = resp.json()
    except ValueError as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"error body is not JSON: {resp.text!r}") from exc
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    errors = body.get("errors")
    assert isinstance(errors, list), f"error body has no errors list: {body!r}"
    assert errors, f"error body has an empty errors list: {body!r}"
    codes = []
    for err in errors:
        assert isinstance(err, dict), f"error entry is not an object: {err!r}"
        code = err.get("code")
        assert isinstance(code, str), f"error entry without a code: {err!r}"
        assert ERROR_CODE_RE.match(code), f"error code not upper-case/underscore: {code!r}"
        assert isinstance(err.get("message", ""), str), f"message not a string: {err!r}"
        codes.append(code)
    return codes


def assert_error(resp: httpx.Response, status: int | tuple[int, ...], code: str) -> None:
    """``resp`` has the given status (or one of them) and a spec error body carrying ``code``."""
    allowed = (status,) if isinstance(status, int) else status
    assert resp.status_code in allowed, (
        f"expected {allowed} {code}, got {resp.status_code}: {resp.text[:500]!r}"
    )
    codes = error_codes(resp)
    assert code in codes, f"expected error code {code}, got {codes}"


def raw_request(
    base_url: str,
    method: str,
    raw_path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send ``raw_path`` byte-for-byte (no dot-segment clean-up, unlike httpx) and wrap the
    answer as an ``httpx.Response`` so the usual assertion helpers apply."""
    url = httpx.URL(base_url)
    assert url.host and url.port
    conn = http.client.HTTPConnection(url.host, url.port, timeout=30)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        conn.request(method, raw_path, body=body, headers=hdrs)
        resp = conn.getresponse()
        content = resp.read()
        return httpx.Response(
            resp.status,
            headers=list(resp.getheaders()),
            content=content,
            request=httpx.Request(method, str(url.join(raw_path))),
        )
    finally:
        conn.close()


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    """Push ``data`` with POST then PUT (the mandatory monolithic flow); return its digest."""
    digest = sha256_digest(data)
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, f"POST upload: {start.status_code} {start.text}"
    done = client.put(
        with_params(location_url(start), {"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, f"PUT upload: {done.status_code} {done.text}"
    return digest


def start_upload(client: httpx.Client, repo: str) -> str:
    """Open an upload session; return its absolute URL."""
    resp = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    assert resp.status_code == 202, f"POST upload: {resp.status_code} {resp.text}"
    return location_url(resp)


def dumps(obj: Any) -> bytes:
    """Serialize a manifest with deliberately unusual (but valid) formatting, so tests can
    tell whether the registry hands back the exact bytes it was given."""
    return (json.dumps(obj, indent=3, separators=(",", " : ")) + "\n").encode()


@dataclass
class Pushed:
    """A manifest as pushed: its exact bytes, digest and media type."""

    body: bytes
    media_type: str
    manifest: dict[str, Any]
    blobs: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return sha256_digest(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def put_manifest(
    client: httpx.Client, repo: str, ref: str, body: bytes, media_type: str
) -> httpx.Response:
    """PUT raw manifest bytes with the given Content-Type (no assertions)."""
    return client.put(
        f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type}
    )


def get_manifest(client: httpx.Client, repo: str, ref: str, method: str = "GET") -> httpx.Response:
    """GET (or HEAD) a manifest, accepting every manifest type."""
    return client.request(
        method, f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
    )


def image_manifest(
    client: httpx.Client,
    repo: str,
    *,
    layers: int = 1,
    docker: bool = False,
    artifact_type: str | None = None,
    config_media_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """Push a config and ``layers`` random layers to ``repo`` and build (but do not push)
    an image manifest over them."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
    ).encode()
    config_digest = push_blob(client, repo, config)
    layer_descs = []
    blobs = [config_digest]
    for _ in range(layers):
        data = random_blob(48)
        blobs.append(push_blob(client, repo, data))
        layer_descs.append(
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": blobs[-1],
                "size": len(data),
            }
        )
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    cfg_type = config_media_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": cfg_type, "digest": config_digest, "size": len(config)},
        "layers": layer_descs,
    }
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    if subject is not None:
        manifest["subject"] = subject
    if annotations is not None:
        manifest["annotations"] = annotations
    return Pushed(body=dumps(manifest), media_type=media_type, manifest=manifest, blobs=blobs)


def index_manifest(
    children: list[Pushed],
    *,
    docker: bool = False,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """Build (but do not push) an OCI image index / Docker manifest list over ``children``."""
    media_type = DOCKER_LIST if docker else OCI_INDEX
    manifests = []
    for i, child in enumerate(children):
        desc = child.descriptor()
        desc["platform"] = {"architecture": f"arch{i}", "os": "linux"}
        manifests.append(desc)
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    if artifact_type is not None:
        index["artifactType"] = artifact_type
    if subject is not None:
        index["subject"] = subject
    if annotations is not None:
        index["annotations"] = annotations
    return Pushed(body=dumps(index), media_type=media_type, manifest=index)


def push_manifest(
    client: httpx.Client, repo: str, pushed: Pushed, ref: str | None = None
) -> Pushed:
    """PUT ``pushed`` under ``ref`` (a tag) or its own digest; assert 201."""
    resp = put_manifest(client, repo, ref or pushed.digest, pushed.body, pushed.media_type)
    assert resp.status_code == 201, f"PUT manifest {ref}: {resp.status_code} {resp.text}"
    return pushed


def push_image(
    client: httpx.Client,
    repo: str,
    ref: str | None = None,
    *,
    layers: int = 1,
    **kwargs: Any,
) -> Pushed:
    """Push a random image (blobs and manifest) to ``repo`` under ``ref`` or its digest."""
    return push_manifest(client, repo, image_manifest(client, repo, layers=layers, **kwargs), ref)


def tag_manifest(client: httpx.Client, repo: str, pushed: Pushed, *tags: str) -> None:
    """Point each of ``tags`` at an already-pushed manifest."""
    for tag in tags:
        push_manifest(client, repo, pushed, tag)


def list_tags(client: httpx.Client, repo: str) -> list[str]:
    """The complete tag list of ``repo`` (single request, asserts 200)."""
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200, f"tags/list: {resp.status_code} {resp.text}"
    return list(resp.json().get("tags") or [])


def next_link(resp: httpx.Response) -> str | None:
    """The target of a ``Link: <...>; rel="next"`` header, resolved, or None."""
    link = resp.headers.get("Link")
    if not link:
        return None
    for part in link.split(","):
        m = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if m and re.search(r'rel="?next"?', m.group(2)):
            return str(resp.request.url.join(m.group(1)))
    raise AssertionError(f"Link header without rel=next: {link!r}")
