"""Dedupe hygiene on an S3 root (moto's server on loopback): adoption turns the full copies
of a root filled without dedupe into references, and GC sweeps entries that name no
reference (left by a crash between an entry's write and its reference's).

The bucket is read directly to see what each step left there.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path
from typing import Any

import httpx
from clients_helpers import Skopeo, assert_same_image
from conftest import Server
from images import build_image
from ops_helpers import signal_server, write_json_atomically
from s3_helpers import (
    S3Server,
    dockyard_s3,
    s3_config,
    start_s3_registry,
    wait_for_adoption,
    write_config,
)
from spec_helpers import (
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    put_manifest,
    random_blob,
    sha256_digest,
)

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


def test_manifests_and_the_children_of_an_index_stay_objects_of_their_own(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """A repository written without dedupe whose ``index.json`` lists only an image index
    (as another tool's OCI layout does: its children are named by the index alone).
    Adoption turns the children's blobs into references but leaves every manifest, the
    children included, an object of its own, as a push does; all still serve."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    config["storage"]["dedupe"] = False
    off = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(off)
    with httpx.Client(base_url=off.url, timeout=60) as client:
        children = [push_image(client, "multi/app") for _ in range(2)]
        top = push_manifest(client, "multi/app", index_manifest(children), "v1")
    off.stop()
    descriptor = top.descriptor() | {"annotations": {"org.opencontainers.image.ref.name": "v1"}}
    only_top = {"schemaVersion": 2, "manifests": [descriptor]}
    s3_server.client().put_object(
        Bucket=bucket, Key=f"{PREFIX}/multi/app/index.json", Body=json.dumps(only_top).encode()
    )

    config["storage"]["dedupe"] = True
    on = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(on)
    wait_for_adoption(on)
    for manifest in [top, *children]:
        hexd = _hex(manifest.digest)
        held = _head(s3_server, bucket, f"{PREFIX}/multi/app/blobs/sha256/{hexd}")
        assert held is not None and held["size"] == manifest.size, manifest.digest
        assert _head(s3_server, bucket, f"{SHARED}/{hexd}") is None, manifest.digest
    for child in children:
        for blob in child.blobs:
            assert _is_reference(s3_server, bucket, "multi/app", blob), blob
    with httpx.Client(base_url=on.url, timeout=60) as client:
        for manifest, ref in [(top, "v1"), *((c, c.digest) for c in children)]:
            got = client.get(
                f"/v2/multi/app/manifests/{ref}", headers={"Accept": manifest.media_type}
            )
            assert got.status_code == 200 and got.content == manifest.body, ref
    assert "Traceback" not in on.output()


def test_a_reload_switching_dedupe_on_converts_the_full_copies(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """Served with ``dedupe: false``, an image pushed to two repositories is two full
    copies; the config switched to dedupe on and reloaded (SIGHUP), the running server
    adopts the root: one shared copy per blob, two references each, pulls whole."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    config["storage"]["dedupe"] = False
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    skopeo = Skopeo(tmp_path / "home")
    image = build_image(tmp_path / "src", "v1", layers=1)
    blobs = [image.config, *image.layers]
    for repo in ("one/app", "two/app"):
        skopeo.push(image.layout, "v1", f"{server.host}/{repo}:v1")
    assert not [key for key in s3_server.keys(bucket, SHARED)]

    config["storage"]["dedupe"] = True
    write_json_atomically(Path(server.args[0]), config)
    signal_server(server, signal.SIGHUP)
    assert wait_for_adoption(server, reload=True) == sum(blob.size for blob in blobs)
    for blob in blobs:
        for repo in ("one/app", "two/app"):
            assert _is_reference(s3_server, bucket, repo, str(blob.digest)), (repo, blob)
    for repo in ("one/app", "two/app"):
        out = tmp_path / f"pulled-{repo.replace('/', '-')}"
        skopeo.pull(f"{server.host}/{repo}:v1", out, "v1")
        assert_same_image(out, "v1", image)
    assert "Traceback" not in server.output()


def _push_image_of(client: httpx.Client, repo: str, layer: bytes) -> None:
    """An image whose one layer is ``layer``, tagged v1: GC keeps what it reaches."""
    config = b'{"architecture": "amd64", "os": "linux"}'
    descriptors = []
    for data, media_type in ((config, OCI_CONFIG), (layer, OCI_LAYER)):
        descriptors.append({"mediaType": media_type, "digest": push_blob(client, repo, data),
                            "size": len(data)})  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptors[0],
        "layers": descriptors[1:],
    }
    put = put_manifest(client, repo, "v1", json.dumps(manifest).encode(), OCI_MANIFEST)
    assert put.status_code == 201, put.text


def _gc(tmp_path: Path, config: dict[str, Any], *extra: str) -> str:
    path = write_config(tmp_path / "gc.json", config)
    proc = dockyard_s3("gc", str(path), *extra, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_gc_sweeps_entries_that_name_no_reference_then_frees_their_copies(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """Two crash leftovers planted in the bucket: an entry whose reference was deleted
    (a crash between a reference's delete and its entry's), and an entry whose name still
    holds a full copy (an adoption cut between the entry and the reference). While they
    are younger than ``gcDelay`` GC keeps them and their copies; once older, a dry run
    lists them and the copies they alone kept, deleting nothing, and a pass deletes them
    and those copies. A live entry (its reference in place) is never dropped, and its
    blob still pulls; the full copy still serves."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    gone, cut, live = random_blob(MiB + 1), random_blob(MiB + 2), random_blob(MiB + 3)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for repo, data in (("gone/app", gone), ("cut/app", cut), ("live/app", live)):
            _push_image_of(client, repo, data)
    raw = s3_server.client()
    digests = {"gone": sha256_digest(gone), "cut": sha256_digest(cut), "live": sha256_digest(live)}

    def entry(name: str) -> str:
        hexd = _hex(digests[name])
        return f"{SHARED}/.{hexd}.refs/{name}/app/blobs/sha256/{hexd}"

    raw.delete_object(Bucket=bucket, Key=f"{PREFIX}/gone/app/blobs/sha256/{_hex(digests['gone'])}")
    raw.put_object(
        Bucket=bucket, Key=f"{PREFIX}/cut/app/blobs/sha256/{_hex(digests['cut'])}", Body=cut
    )
    for name in digests:
        assert _head(s3_server, bucket, entry(name)) is not None

    def stored() -> set[str]:
        return set(s3_server.keys(bucket, SHARED))

    before = stored()
    young = s3_config(s3_server, tmp_path / "data", bucket)
    young["storage"] |= {"gcDelay": "1h"}
    printed = _gc(tmp_path, young)
    assert stored() == before, printed
    assert "leftover entry" not in printed

    old = s3_config(s3_server, tmp_path / "data", bucket)
    old["storage"] |= {"gcDelay": "0s"}
    printed = _gc(tmp_path, old, "--dry-run")
    assert stored() == before, printed
    for name in ("gone", "cut"):
        assert f"would remove leftover entry of shared copy {digests[name]}" in printed, printed
        assert f"would remove shared copy {digests[name]}" in printed, printed
    assert f"{digests['live']}" not in printed

    printed = _gc(tmp_path, old)
    for name in ("gone", "cut"):
        assert f"removed leftover entry of shared copy {digests[name]}" in printed, printed
        assert f"removed shared copy {digests[name]}" in printed, printed
        assert not [k for k in stored() if _hex(digests[name]) in k], name
    assert {entry("live"), f"{SHARED}/{_hex(digests['live'])}"} <= stored()
    assert _is_reference(s3_server, bucket, "live/app", digests["live"])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get(f"/v2/live/app/blobs/{digests['live']}").content == live
        assert client.get(f"/v2/cut/app/blobs/{digests['cut']}").content == cut
    assert "Traceback" not in server.output()
