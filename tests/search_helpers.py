"""Helpers the search API and web UI tests share: configs that turn them on, queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

SEARCH = "/v2/_zot/ext/search"


def search_config(
    path: Path, http: dict[str, Any] | None = None, ui: bool = True, search: bool = True
) -> Path:
    """A config with ``extensions.search`` (and ``ui``) on, and this ``http`` section."""
    extensions: dict[str, Any] = {}
    if search:
        extensions["search"] = {"enable": True}
    if ui:
        extensions["ui"] = {"enable": True}
    config = {"distSpecVersion": "1.1.1", "http": http or {}, "extensions": extensions}
    path.write_text(json.dumps(config, indent=2))
    return path


def gql(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query; assert 200 and no errors; return ``data``."""
    resp = client.post(SEARCH, json={"query": query, "variables": variables})
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    body = resp.json()
    assert "errors" not in body, body["errors"]
    return dict(body["data"])


def gql_raw(client: httpx.Client, query: str, **variables: Any) -> httpx.Response:
    return client.post(SEARCH, json={"query": query, "variables": variables})


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def push_rich_image(
    client: httpx.Client,
    repo: str,
    tag: str | None,
    layers: list[bytes],
    *,
    labels: dict[str, str] | None = None,
    env: list[str] | None = None,
    entrypoint: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    arch: str = "amd64",
) -> dict[str, Any]:
    """Push an image whose config has env, entrypoint, labels and one history entry per
    layer; return what was pushed (manifest dict, bytes, digests, config)."""
    from spec_helpers import push_blob, put_manifest, sha256_digest

    config = {
        "created": "2024-05-06T07:08:09Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": env or ["PATH=/usr/bin"],
            "Entrypoint": entrypoint or ["/bin/app"],
            "Labels": labels or {},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b) for b in layers]},
        "history": [
            {"created": "2024-05-06T07:08:09Z", "created_by": f"RUN step {i}"}
            for i in range(len(layers))
        ],
    }
    config_bytes = json.dumps(config).encode()
    config_digest = push_blob(client, repo, config_bytes)
    layer_descs = [
        {"mediaType": OCI_LAYER, "digest": push_blob(client, repo, b), "size": len(b)}
        for b in layers
    ]
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layer_descs,
    }
    if annotations:
        manifest["annotations"] = annotations
    body = json.dumps(manifest, indent=1).encode()
    digest = sha256_digest(body)
    resp = put_manifest(client, repo, tag or digest, body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text
    return {
        "manifest": manifest,
        "body": body,
        "digest": digest,
        "config": config,
        "config_digest": config_digest,
        "config_size": len(config_bytes),
        "size": len(body) + len(config_bytes) + sum(len(b) for b in layers),
    }


def push_referrer(
    client: httpx.Client,
    repo: str,
    subject: dict[str, Any],
    artifact_type: str,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Push an artifact manifest (empty config, one blob) whose subject is ``subject``."""
    import os

    from spec_helpers import push_blob, put_manifest, sha256_digest

    empty = push_blob(client, repo, b"{}")
    blob = os.urandom(64)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [
            {
                "mediaType": "application/octet-stream",
                "digest": push_blob(client, repo, blob),
                "size": len(blob),
            }
        ],
        "subject": subject,
    }
    if annotations:
        manifest["annotations"] = annotations
    body = json.dumps(manifest).encode()
    digest = sha256_digest(body)
    resp = put_manifest(client, repo, digest, body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text
    return {"manifest": manifest, "digest": digest, "size": len(body)}
