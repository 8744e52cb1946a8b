"""Dedupe on an S3 root (moto's server on loopback), and GC of what the bucket holds outside
the repositories: shared copies no repository names, multipart uploads left open.

With dedupe, a digest's bytes are one object per root, ``<prefix>/_dockyard/blobs/<alg>/
<hex>``; each repository's ``blobs/<alg>/<hex>`` is an empty reference object naming it,
with an entry ``.<hex>.refs/<repository's key>`` beside the shared copy. Without dedupe the
bucket is the plain OCI layout. Each test reads the bucket to see which it got.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from clients_helpers import Skopeo, assert_same_image
from conftest import Server
from images import build_image
from s3_helpers import (
    S3Server,
    dockyard_s3,
    s3_config,
    start_s3_registry,
    wait_for_adoption,
    write_config,
)
from spec_helpers import push_blob, push_image, random_blob, sha256_digest
from storage_helpers import cache_paths

PREFIX = "dockyard"
SHARED = f"{PREFIX}/_dockyard/blobs/sha256"
MiB = 1024 * 1024


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _objects(s3: S3Server, bucket: str) -> dict[str, dict[str, Any]]:
    """Every object under the prefix: its size and metadata (a HEAD each)."""
    client = s3.client()
    found = {}
    for key in s3.keys(bucket, PREFIX):
        head = client.head_object(Bucket=bucket, Key=key)
        found[key] = {"size": head["ContentLength"], "meta": head.get("Metadata", {})}
    return found


def _assert_stored_once(objects: dict[str, dict[str, Any]], digest: str, repos: list[str]) -> None:
    """One object holds the bytes; each repository's name of it is an empty reference."""
    hexd = _hex(digest)
    shared = f"{SHARED}/{hexd}"
    assert shared in objects, f"no shared copy of {digest}"
    holding = [k for k, o in objects.items() if k.endswith(hexd) and o["size"] > 0]
    assert holding == [shared], holding
    for repo in repos:
        name = f"{PREFIX}/{repo}/blobs/sha256/{hexd}"
        assert objects[name]["size"] == 0, name
        assert objects[name]["meta"] == {"dockyard-ref": f"_dockyard/blobs/sha256/{hexd}"}
        assert f"{SHARED}/.{hexd}.refs/{repo}/blobs/sha256/{hexd}" in objects


def _gc_config(s3: S3Server, root: Path, bucket: str, **storage: Any) -> dict[str, Any]:
    config = s3_config(s3, root, bucket)
    config["storage"] |= {"gcDelay": "0s", **storage}
    return config


def _gc(tmp_path: Path, config: dict[str, Any]) -> str:
    path = write_config(tmp_path / "gc.json", config)
    proc = dockyard_s3("gc", str(path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_two_repositories_share_one_copy_until_gc_drops_it_with_the_last_reference(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """skopeo pushes one image to two repositories, and a third gets its largest layer
    by a plain upload: every blob is one object in the bucket, each repository holds a
    reference. Both pull. One image deleted and GC run: the other still pulls, the copy
    stays; the last deleted: GC removes the copies, their entries and the map's records."""
    bucket = s3_server.new_bucket()
    config = _gc_config(s3_server, tmp_path / "data", bucket)
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    skopeo = Skopeo(tmp_path / "home")
    image = build_image(tmp_path / "src", "v1", layers=2)
    for repo in ("one/app", "two/app"):
        skopeo.push(image.layout, "v1", f"{server.host}/{repo}:v1")
    blobs = [image.config.digest, *(layer.digest for layer in image.layers)]
    layer = max(image.layers, key=lambda d: d.size)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        data = client.get(f"/v2/one/app/blobs/{layer.digest}").content
        assert push_blob(client, "three/app", data) == layer.digest  # a real upload
    objects = _objects(s3_server, bucket)
    for digest in blobs:
        _assert_stored_once(objects, digest, ["one/app", "two/app"])
    _assert_stored_once(objects, layer.digest, ["one/app", "two/app", "three/app"])
    assert not any("/.uploads/" in key for key in objects), "an upload was left behind"
    for n, repo in enumerate(("one/app", "two/app")):
        out = tmp_path / f"out{n}"
        skopeo.pull(f"{server.host}/{repo}:v1", out, "v1")
        assert_same_image(out, "v1", image)

    with httpx.Client(base_url=server.url, timeout=60) as client:
        gone = client.delete(f"/v2/one/app/manifests/{image.manifest.digest}")
        assert gone.status_code == 202, gone.text
        assert client.delete(f"/v2/three/app/blobs/{layer.digest}").status_code == 202
    _gc(tmp_path, config)
    objects = _objects(s3_server, bucket)
    for digest in blobs:
        _assert_stored_once(objects, digest, ["two/app"])
        assert f"{PREFIX}/one/app/blobs/sha256/{_hex(digest)}" not in objects
        assert cache_paths(server.root, digest) == [f"two/app/blobs/sha256/{_hex(digest)}"]
    out = tmp_path / "after"
    skopeo.pull(f"{server.host}/two/app:v1", out, "v1")
    assert_same_image(out, "v1", image)

    with httpx.Client(base_url=server.url, timeout=60) as client:
        gone = client.delete(f"/v2/two/app/manifests/{image.manifest.digest}")
        assert gone.status_code == 202, gone.text
    printed = _gc(tmp_path, config)
    assert [key for key in s3_server.keys(bucket, SHARED)] == [], "a copy nobody names stayed"
    for digest in blobs:
        assert f"removed shared copy {digest}" in printed, printed
        assert cache_paths(server.root, digest) == []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get(f"/v2/two/app/blobs/{layer.digest}").status_code == 404
        # Pushed again after all that: stored once more, served.
        assert push_blob(client, "two/app", data) == layer.digest
        assert client.get(f"/v2/two/app/blobs/{layer.digest}").content == data
    _assert_stored_once(_objects(s3_server, bucket), layer.digest, ["two/app"])
    assert "Traceback" not in server.output()


def test_stale_copies_and_records_are_repaired_never_served(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """Behind the registry's back: the shared copy deleted (the references answer 404, a
    pusher's HEAD elsewhere links nothing and the stale record goes, and a new push heals
    every reference), then its bytes changed (quarantined on the first read: 404, never
    200 with wrong bytes), then a repository's reference deleted (its map record dropped
    by the next look-up)."""
    server = start_s3_registry(s3_server, tmp_path / "data")
    servers.append(server)
    bucket = server.bucket
    data = random_blob(2 * MiB + 5)
    digest = sha256_digest(data)
    shared = f"{SHARED}/{_hex(digest)}"
    raw = s3_server.client()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for repo in ("a/app", "b/app"):
            push_blob(client, repo, data)
        raw.delete_object(Bucket=bucket, Key=shared)
        for repo in ("a/app", "b/app"):
            resp = client.get(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 404, (repo, resp.status_code)
            assert resp.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert client.head(f"/v2/c/app/blobs/{digest}").status_code == 404
        assert cache_paths(server.root, digest) == [], "stale records kept"
        push_blob(client, "c/app", data)
        for repo in ("a/app", "b/app", "c/app"):
            resp = client.get(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 200 and resp.content == data, repo

        # Same size, other bytes: a new ETag, so hashed before it is served, and put aside.
        raw.put_object(Bucket=bucket, Key=shared, Body=random_blob(len(data)))
        bad = client.get(f"/v2/a/app/blobs/{digest}")
        assert bad.status_code == 404, bad.status_code
        assert bad.json()["errors"][0]["detail"]["reason"] == "quarantined"
        for repo in ("b/app", "c/app"):
            assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 404, repo
        assert any("/_dockyard/quarantine/a/app/" in k for k in s3_server.keys(bucket))
        push_blob(client, "b/app", data)
        for repo in ("b/app", "c/app"):
            resp = client.get(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 200 and resp.content == data, repo

        raw.delete_object(Bucket=bucket, Key=f"{PREFIX}/b/app/blobs/sha256/{_hex(digest)}")
        assert f"b/app/blobs/sha256/{_hex(digest)}" in cache_paths(server.root, digest)
        assert client.get(f"/v2/b/app/blobs/{digest}").status_code == 404
        head = client.head(f"/v2/d/app/blobs/{digest}")  # links from c/app, the live one
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
        assert client.get(f"/v2/d/app/blobs/{digest}").content == data
    assert "Traceback" not in server.output()


def test_switching_dedupe_off_and_on_keeps_every_image_pullable(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """``dedupe: false`` keeps the plain OCI layout (full copies, no shared store); on, new
    pushes are shared and adoption turns the full copies into references (see
    test_s3_adopt); off again, references still serve and a mount from one makes a full
    copy."""
    bucket = s3_server.new_bucket()
    images: dict[str, Any] = {}

    def serve(dedupe: bool) -> Server:
        config = s3_config(s3_server, tmp_path / "data", bucket)
        config["storage"]["dedupe"] = dedupe
        server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
        servers.append(server)
        return server

    def pulls_all(client: httpx.Client) -> None:
        for repo, (pushed, layer) in images.items():
            got = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": pushed.media_type})
            assert got.status_code == 200 and got.content == pushed.body, repo
            assert client.get(f"/v2/{repo}/blobs/{sha256_digest(layer)}").content == layer

    layer = random_blob(MiB)
    digest = sha256_digest(layer)
    off = serve(False)
    with httpx.Client(base_url=off.url, timeout=60) as client:
        for repo in ("plain/one", "plain/two"):
            push_blob(client, repo, layer)
            images[repo] = (push_image(client, repo, "v1"), layer)
    objects = _objects(s3_server, bucket)
    assert not any(key.startswith(SHARED) for key in objects)
    for repo in ("plain/one", "plain/two"):
        assert objects[f"{PREFIX}/{repo}/blobs/sha256/{_hex(digest)}"]["size"] == len(layer)
    off.stop()

    on = serve(True)
    with httpx.Client(base_url=on.url, timeout=60) as client:
        pulls_all(client)
        push_blob(client, "shared/one", layer)
        images["shared/one"] = (push_image(client, "shared/one", "v1"), layer)
        pulls_all(client)
        wait_for_adoption(on)
        pulls_all(client)
    _assert_stored_once(
        _objects(s3_server, bucket), digest, ["plain/one", "plain/two", "shared/one"]
    )
    on.stop()

    off = serve(False)
    with httpx.Client(base_url=off.url, timeout=60) as client:
        pulls_all(client)
        mounted = client.post(
            "/v2/copied/app/blobs/uploads/", params={"mount": digest, "from": "shared/one"}
        )
        assert mounted.status_code == 201, mounted.text
        assert client.get(f"/v2/copied/app/blobs/{digest}").content == layer
    objects = _objects(s3_server, bucket)
    assert objects[f"{PREFIX}/copied/app/blobs/sha256/{_hex(digest)}"]["size"] == len(layer)


def test_gc_aborts_multipart_uploads_older_than_the_gc_delay(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """Multipart uploads left open under the root's prefix (a publish's compose cut by a
    crash) are aborted by ``dockyard gc`` once older than ``gcDelay``; younger ones, and
    any outside the prefix, are kept. moto reports every upload as started on 2010-11-10,
    so the age is moved through the delay: a delay longer than that keeps it, then one
    hour aborts it."""
    bucket = s3_server.new_bucket()
    (tmp_path / "data").mkdir()
    raw = s3_server.client()
    ours = raw.create_multipart_upload(Bucket=bucket, Key=f"{PREFIX}/app/blobs/sha256/cut")
    theirs = raw.create_multipart_upload(Bucket=bucket, Key="elsewhere/object")
    raw.upload_part(
        Bucket=bucket,
        Key=f"{PREFIX}/app/blobs/sha256/cut",
        UploadId=ours["UploadId"],
        PartNumber=1,
        Body=b"x" * 1024,
    )

    def open_uploads() -> set[str]:
        return {u["UploadId"] for u in raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}

    young = _gc_config(s3_server, tmp_path / "data", bucket, gcDelay=f"{365 * 40}d")
    printed = _gc(tmp_path, young)
    assert open_uploads() == {ours["UploadId"], theirs["UploadId"]}, printed
    assert "multipart" not in printed

    dry = write_config(tmp_path / "dry.json", _gc_config(s3_server, tmp_path / "data", bucket))
    proc = dockyard_s3("gc", str(dry), "--dry-run", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"would remove abandoned multipart upload {PREFIX}/app/blobs/sha256/cut" in proc.stdout
    assert open_uploads() == {ours["UploadId"], theirs["UploadId"]}

    printed = _gc(tmp_path, _gc_config(s3_server, tmp_path / "data", bucket, gcDelay="1h"))
    assert f"removed abandoned multipart upload {PREFIX}/app/blobs/sha256/cut" in printed
    assert open_uploads() == {theirs["UploadId"]}


def test_scrub_hashes_a_shared_copy_through_every_reference(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """``dockyard scrub`` reads a reference's shared copy: good bytes pass in every
    repository, and bytes changed in the bucket are reported for each that names them."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    layer = random_blob(3 * MiB)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for repo in ("s/one", "s/two"):
            push_blob(client, repo, layer)
            push_image(client, repo, "v1")
    server.stop()
    path = write_config(tmp_path / "scrub.json", config)
    proc = dockyard_s3("scrub", str(path), "--dry-run", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = sha256_digest(layer)
    s3_server.client().put_object(
        Bucket=bucket, Key=f"{SHARED}/{_hex(digest)}", Body=random_blob(len(layer))
    )
    proc = dockyard_s3("scrub", str(path), "--dry-run", timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    for repo in ("s/one", "s/two"):
        assert f"{repo}@{digest}" in out, out


def test_the_bucket_layout_without_dedupe_is_plain_oci(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """With ``dedupe: false`` no key is written outside the repositories' OCI layouts (and
    the readiness probe's), so another OCI tool can read the bucket as it is."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    config["storage"]["dedupe"] = False
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        pushed = push_image(client, "oci/app", "v1", layers=2)
    keys = set(s3_server.keys(bucket, PREFIX)) - {
        k for k in s3_server.keys(bucket, PREFIX) if "/.readyz-" in k
    }
    expected = {f"{PREFIX}/oci/app/{name}" for name in ("index.json", "oci-layout")}
    expected |= {f"{PREFIX}/oci/app/blobs/sha256/{_hex(d)}" for d in [pushed.digest, *pushed.blobs]}
    assert keys == expected
    index = json.loads(
        s3_server.client()
        .get_object(Bucket=bucket, Key=f"{PREFIX}/oci/app/index.json")["Body"]
        .read()
    )
    assert [m["digest"] for m in index["manifests"]] == [pushed.digest]
