"""Dedupe hygiene on an S3 root (moto's server on loopback): adoption turns the full copies
of a root filled without dedupe into references.

The bucket is read directly to see what each step left there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from clients_helpers import Skopeo, assert_same_image
from conftest import Server
from images import build_image
from s3_helpers import (
    S3Server,
    s3_config,
    start_s3_registry,
    wait_for_adoption,
)
from spec_helpers import push_blob, push_image, random_blob, sha256_digest

PREFIX = "dockyard"
SHARED = f"{PREFIX}/_dockyard/blobs/sha256"
MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _head(s3: S3Server, bucket: str, key: str) -> dict[str, Any] | None:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=key)
    if not any(obj["Key"] == key for obj in listed.get("Contents", [])):
        return None
    head = s3.client().head_object(Bucket=bucket, Key=key)
    return {"size": head["ContentLength"], "meta": head.get("Metadata", {})}


def _is_reference(s3: S3Server, bucket: str, repo: str, digest: str) -> bool:
    """The repository's blob is an empty reference object naming the shared copy, whose
    entry is beside that copy."""
    hexd = _hex(digest)
    head = _head(s3, bucket, f"{PREFIX}/{repo}/blobs/sha256/{hexd}")
    entry = f"{SHARED}/.{hexd}.refs/{repo}/blobs/sha256/{hexd}"
    return (
        head is not None
        and head["size"] == 0
        and head["meta"] == {"dockyard-ref": f"_dockyard/blobs/sha256/{hexd}"}
        and _head(s3, bucket, entry) is not None
    )


def test_adoption_turns_full_copies_into_references_and_never_promotes_a_corrupt_one(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """A root filled with ``dedupe: false`` (one image in two repositories, a third blob
    whose object was then corrupted in the bucket), served again with dedupe on: each
    blob of the image is one shared copy and both repositories hold references, both
    pull whole with skopeo, manifests stay objects of their own, the bytes saved are one
    repository's blobs. The corrupt object is left as it is, and nothing of it is shared:
    its GET is a 404 (quarantined), never its bytes."""
    bucket = s3_server.new_bucket()

    def serve(dedupe: bool) -> Server:
        config = s3_config(s3_server, tmp_path / "data", bucket)
        config["storage"]["dedupe"] = dedupe
        server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
        servers.append(server)
        return server

    skopeo = Skopeo(tmp_path / "home")
    image = build_image(tmp_path / "src", "v1", layers=2)
    blobs = [image.config, *image.layers]
    corrupt = random_blob(MiB + 7)
    corrupt_digest = sha256_digest(corrupt)
    off = serve(False)
    for repo in ("one/app", "two/app"):
        skopeo.push(image.layout, "v1", f"{off.host}/{repo}:v1")
    with httpx.Client(base_url=off.url, timeout=60) as client:
        push_blob(client, "bad/app", corrupt)
        push_image(client, "bad/app", "v1")
    off.stop()
    bad_key = f"{PREFIX}/bad/app/blobs/sha256/{_hex(corrupt_digest)}"
    garbled = random_blob(len(corrupt))
    s3_server.client().put_object(Bucket=bucket, Key=bad_key, Body=garbled)
    for blob in blobs:
        for repo in ("one/app", "two/app"):
            assert not _is_reference(s3_server, bucket, repo, str(blob.digest))

    on = serve(True)
    saved = wait_for_adoption(on)
    assert saved == sum(blob.size for blob in blobs), on.output()
    for blob in blobs:
        hexd = _hex(str(blob.digest))
        shared = _head(s3_server, bucket, f"{SHARED}/{hexd}")
        assert shared is not None and shared["size"] == blob.size, blob.digest
        for repo in ("one/app", "two/app"):
            assert _is_reference(s3_server, bucket, repo, str(blob.digest)), (repo, blob)
    for repo in ("one/app", "two/app"):
        manifest = _head(
            s3_server, bucket, f"{PREFIX}/{repo}/blobs/sha256/{_hex(image.manifest.digest)}"
        )
        assert manifest is not None and manifest["size"] == image.manifest.size
        assert _head(s3_server, bucket, f"{SHARED}/{_hex(image.manifest.digest)}") is None
        out = tmp_path / f"pulled-{repo.replace('/', '-')}"
        skopeo.pull(f"{on.host}/{repo}:v1", out, "v1")
        assert_same_image(out, "v1", image)

    # Never promoted: no shared copy, no entry; the repository's object untouched.
    assert not [k for k in s3_server.keys(bucket, SHARED) if _hex(corrupt_digest) in k]
    body = s3_server.client().get_object(Bucket=bucket, Key=bad_key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(garbled).digest()
    assert f"does not hash to {corrupt_digest}" in on.output()
    with httpx.Client(base_url=on.url, timeout=60) as client:
        got = client.get(f"/v2/bad/app/blobs/{corrupt_digest}")
        assert got.status_code == 404, got.status_code
    assert "Traceback" not in on.output()
