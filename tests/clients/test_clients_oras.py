"""The ORAS Python SDK against a running dockyard: artifacts, and referrers through subject.

Everything is pushed through the SDK (``oras.provider.Registry``), as an ORAS user would.
The SDK has no referrers call, so the listing is read with a plain GET of the
distribution-spec endpoint ``/v2/<name>/referrers/<digest>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import oras.oci
import oras.provider
import pytest
from conftest import Server

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM_TYPE = "application/vnd.dockyard.test.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.dockyard.test.signature.v1"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oras_client(server: Server) -> oras.provider.Registry:
    """An SDK client for the server over plain HTTP (loopback only)."""
    return oras.provider.Registry(hostname=server.host, insecure=True)


def fetch_manifest(server: Server, repo: str, reference: str) -> bytes:
    """The stored bytes of a manifest, as the registry serves them."""
    resp = httpx.get(
        f"{server.url}/v2/{repo}/manifests/{reference}",
        headers={"Accept": f"{MANIFEST}, {INDEX}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.content


def referrers(server: Server, repo: str, digest: str, **params: str) -> httpx.Response:
    """GET the referrers list of ``digest`` (end-12a/12b)."""
    return httpx.get(f"{server.url}/v2/{repo}/referrers/{digest}", params=params, timeout=30)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_artifact_file(
    registry: Server, repo: str, tmp_path: Path, chunked: bool
) -> None:
    """A file pushed with ``oras push`` (monolithic or chunked) pulls back byte for byte."""
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(300_000) + b"dockyard"
    artifact = src / "artifact.bin"
    artifact.write_bytes(payload)
    client = oras_client(registry)
    target = f"{registry.host}/{repo}:v1"

    resp = client.push(
        target,
        files=[f"{artifact}:application/vnd.dockyard.test.file"],
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=64 * 1024,
        quiet=True,
    )
    assert resp.status_code == 201, resp.text

    manifest = json.loads(fetch_manifest(registry, repo, "v1"))
    assert [layer["digest"] for layer in manifest["layers"]] == [digest_of(payload)]
    assert manifest["layers"][0]["mediaType"] == "application/vnd.dockyard.test.file"

    out = tmp_path / "out"
    files = client.pull(target, outdir=str(out))
    assert [Path(f).name for f in files] == ["artifact.bin"]
    assert Path(files[0]).read_bytes() == payload
    assert client.get_tags(target) == ["v1"]


def test_artifact_with_subject_is_listed_as_referrer(
    registry: Server, repo: str, tmp_path: Path
) -> None:
    """Artifacts pushed with a ``subject`` appear in the referrers list with their artifactType."""
    client = oras_client(registry)
    base = tmp_path / "base.txt"
    base.write_bytes(os.urandom(4096))
    client.push(
        f"{registry.host}/{repo}:base", files=[str(base)], disable_path_validation=True, quiet=True
    )
    base_bytes = fetch_manifest(registry, repo, "base")
    subject = oras.oci.Subject(
        mediaType=MANIFEST, digest=digest_of(base_bytes), size=len(base_bytes)
    )

    empty = referrers(registry, repo, subject.digest)
    assert empty.status_code == 200, empty.text
    assert empty.headers["content-type"].split(";")[0] == INDEX
    assert empty.json()["manifests"] == []

    # 1. oras push with a subject: no artifactType, so the config's mediaType stands for it.
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": [os.urandom(8).hex()]}))
    sbom_config = tmp_path / "sbom-config.json"
    sbom_config.write_text(json.dumps({"generator": "dockyard-tests"}))
    sbom_annotations = {
        "org.example.sbom.format": "json",
        "dev.dockyard.nonce": os.urandom(4).hex(),
    }
    resp = client.push(
        f"{registry.host}/{repo}:sbom",
        files=[f"{sbom}:application/json"],
        manifest_config=f"{sbom_config}:{SBOM_TYPE}",
        manifest_annotations=sbom_annotations,
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers.get("OCI-Subject") == subject.digest
    sbom_bytes = fetch_manifest(registry, repo, "sbom")
    assert json.loads(sbom_bytes)["subject"]["digest"] == subject.digest

    # 2. A manifest with an explicit artifactType and the empty config, via the SDK's calls.
    container = client.get_container(f"{registry.host}/{repo}:signature")
    blank = tmp_path / "empty.json"
    blank.write_text("{}")
    empty_config = {"mediaType": EMPTY, "digest": digest_of(b"{}"), "size": 2}
    signature = tmp_path / "signature.sig"
    signature.write_bytes(os.urandom(512))
    layer = oras.oci.NewLayer(str(signature), media_type="application/octet-stream")
    for path, desc in ((blank, empty_config), (signature, layer)):
        assert client.upload_blob(str(path), container, desc).status_code in (200, 201)
    sig_annotations = {"org.example.signature.fingerprint": os.urandom(4).hex()}
    sig_manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": empty_config,
        "layers": [layer],
        "subject": {"mediaType": MANIFEST, "digest": subject.digest, "size": subject.size},
        "annotations": sig_annotations,
    }
    resp = client.upload_manifest(sig_manifest, container)
    assert resp.status_code == 201, resp.text
    assert resp.headers.get("OCI-Subject") == subject.digest
    sig_bytes = fetch_manifest(registry, repo, "signature")

    listing = referrers(registry, repo, subject.digest)
    assert listing.status_code == 200, listing.text
    assert listing.headers["content-type"].split(";")[0] == INDEX
    body = listing.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == INDEX
    found = {d["digest"]: d for d in body["manifests"]}
    assert set(found) == {digest_of(sbom_bytes), digest_of(sig_bytes)}

    sbom_desc = found[digest_of(sbom_bytes)]
    assert sbom_desc["mediaType"] == MANIFEST
    assert sbom_desc["size"] == len(sbom_bytes)
    assert sbom_desc["artifactType"] == SBOM_TYPE
    assert sbom_desc.get("annotations") == sbom_annotations

    sig_desc = found[digest_of(sig_bytes)]
    assert sig_desc["mediaType"] == MANIFEST
    assert sig_desc["size"] == len(sig_bytes)
    assert sig_desc["artifactType"] == SIGNATURE_TYPE
    assert sig_desc.get("annotations") == sig_annotations

    # A referrer that nothing refers to has an empty list of its own.
    assert referrers(registry, repo, digest_of(sig_bytes)).json()["manifests"] == []

    filtered = referrers(registry, repo, subject.digest, artifactType=SIGNATURE_TYPE)
    assert filtered.status_code == 200, filtered.text
    if "artifactType" in filtered.headers.get("OCI-Filters-Applied", ""):
        assert [d["digest"] for d in filtered.json()["manifests"]] == [digest_of(sig_bytes)]
    else:
        assert {d["digest"] for d in filtered.json()["manifests"]} == set(found)
