"""A registry whose layouts live in S3 (moto's server on loopback), driven by real clients.

The server is configured with zot's ``storageDriver`` keys; ``rootDirectory`` is only its
local private folder. Each test checks what a user relies on: images survive a push and
pull by skopeo, chunked uploads and ranges return the exact bytes, the bucket alone holds
the registry (a restart with an empty local folder serves every image), and a bucket that
does not answer is reported by ``verify`` and ``/readyz``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from clients_helpers import Skopeo, assert_same_image
from conftest import Server, free_port
from images import build_image
from ops_helpers import signal_server, wait_for, write_json_atomically
from s3_helpers import (
    S3Registry,
    S3Server,
    dockyard_s3,
    s3_config,
    start_s3_registry,
    write_config,
)
from spec_helpers import (
    location_url,
    push_blob,
    push_image,
    random_blob,
    sha256_digest,
    start_upload,
    with_params,
)
from storage_helpers import CHUNK, payload, process_tree, vm_hwm
from tcp_link import TcpLink

MiB = 1024 * 1024


@pytest.fixture
def s3_registry(s3_server: S3Server, tmp_path: Path, servers: list[Server]) -> S3Registry:
    server = start_s3_registry(s3_server, tmp_path / "data")
    servers.append(server)
    return server


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def _clean_log(server: Server) -> None:
    """No warning, no error and no traceback: a normal push and pull is not an incident."""
    for line in server.output().splitlines():
        assert "Traceback" not in line, server.output()
        if line.startswith("{"):
            assert json.loads(line)["level"] in ("debug", "info"), line


def test_skopeo_round_trip_keeps_the_oci_layout_in_the_bucket(
    s3_server: S3Server, s3_registry: S3Registry, tmp_path: Path
) -> None:
    """skopeo pushes and pulls back the same image; the bucket holds the repository as an
    OCI layout under ``rootdirectory``, the local folder holds none of it, and the log
    has no error line."""
    skopeo = Skopeo(tmp_path / "skopeo-home")
    image = build_image(tmp_path / "src", "v1")
    skopeo.push(image.layout, "v1", f"{s3_registry.host}/team/app:v1")
    out = tmp_path / "out"
    skopeo.pull(f"{s3_registry.host}/team/app:v1", out, "v1")
    assert_same_image(out, "v1", image)

    keys = set(s3_server.keys(s3_registry.bucket))
    assert {"dockyard/team/app/index.json", "dockyard/team/app/oci-layout"} <= keys
    for digest in [image.manifest_digest, image.config.digest, *(x.digest for x in image.layers)]:
        assert f"dockyard/team/app/blobs/sha256/{digest.removeprefix('sha256:')}" in keys
    assert not any("/.uploads/" in key for key in keys), "a finished upload was left behind"
    index = json.loads(
        s3_server.client()
        .get_object(Bucket=s3_registry.bucket, Key="dockyard/team/app/index.json")["Body"]
        .read()
    )
    assert [m["digest"] for m in index["manifests"]] == [image.manifest_digest]
    assert not (s3_registry.root / "team").exists()
    _clean_log(s3_registry)


def test_chunked_upload_of_small_and_large_pieces_publishes_the_exact_bytes(
    s3_registry: S3Registry,
) -> None:
    """PATCHes smaller and larger than S3's 5 MiB part, a status query between them, then a
    PUT with the last bytes: the blob is exactly the concatenation."""
    sizes = [3 * MiB, 1, 6 * MiB + 7, 100 * 1024, 2 * MiB]
    pieces = [random_blob(n) for n in sizes]
    data = b"".join(pieces[:-1])
    digest = sha256_digest(data + pieces[-1])
    with _client(s3_registry) as client:
        url = start_upload(client, "chunks/app")
        offset = 0
        for piece in pieces[:-1]:
            end = offset + len(piece) - 1
            resp = client.patch(
                url,
                content=piece,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end}",
                },
            )
            assert resp.status_code == 202, resp.text
            assert resp.headers["Range"] == f"0-{end}"
            offset = end + 1
            url = location_url(resp)
            status = client.get(url)
            assert status.status_code == 204 and status.headers["Range"] == f"0-{end}"
        # A chunk that does not start where the upload ends is refused, the upload intact.
        wrong = client.patch(url, content=b"x", headers={"Content-Range": "0-0"})
        assert wrong.status_code == 416
        done = client.put(with_params(url, {"digest": digest}), content=pieces[-1])
        assert done.status_code == 201, done.text
        got = client.get(f"/v2/chunks/app/blobs/{digest}")
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == digest.removeprefix("sha256:")
        assert got.content == data + pieces[-1]
    _clean_log(s3_registry)


def test_a_monolithic_put_stores_its_body_on_the_bucket(s3_registry: S3Registry) -> None:
    """POST then PUT with the whole body (the spec's mandatory flow): the stored blob is
    exactly that body. (A closing PUT's body is not fsynced on a local disk until its
    publish; on S3 the appender's sync is what puts it at all.)"""
    with _client(s3_registry) as client:
        for size in (85, 6 * MiB + 3):
            data = random_blob(size)
            digest = sha256_digest(data)
            url = start_upload(client, "mono/app")
            done = client.put(with_params(url, {"digest": digest}), content=data)
            assert done.status_code == 201, done.text
            head = client.head(f"/v2/mono/app/blobs/{digest}")
            assert head.headers["Content-Length"] == str(size)
            assert client.get(f"/v2/mono/app/blobs/{digest}").content == data
    _clean_log(s3_registry)


def test_range_requests_return_exactly_the_asked_bytes(s3_registry: S3Registry) -> None:
    """A blob larger than one read piece: single ranges give 206 with the exact slice and
    Content-Range; a range past the end gives 416; HEAD gives the size and no body."""
    data = random_blob(3 * MiB + 123)
    size = len(data)
    with _client(s3_registry) as client:
        digest = push_blob(client, "ranges/app", data)
        url = f"/v2/ranges/app/blobs/{digest}"
        cases = {
            "bytes=0-0": (0, 0),
            "bytes=100-": (100, size - 1),
            "bytes=-10": (size - 10, size - 1),
            f"bytes={MiB - 5}-{2 * MiB + 5}": (MiB - 5, 2 * MiB + 5),
            f"bytes={size - 3}-{size + 100}": (size - 3, size - 1),
        }
        for header, (first, last) in cases.items():
            resp = client.get(url, headers={"Range": header})
            assert resp.status_code == 206, (header, resp.status_code)
            assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
            assert resp.content == data[first : last + 1], header
        past = client.get(url, headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416
        assert past.headers["Content-Range"] == f"bytes */{size}"
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["Docker-Content-Digest"] == digest
        head = client.head(url)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == size
        assert head.content == b""


def test_restart_on_an_empty_local_folder_serves_every_image(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """The bucket is the registry: with the local folder deleted (locks, databases, the
    catalog's log), a new server on the same bucket lists, resolves and serves it all."""
    first = start_s3_registry(s3_server, tmp_path / "data")
    servers.append(first)
    with _client(first) as client:
        pushed = {
            ("one/app", "v1"): push_image(client, "one/app", "v1", layers=2),
            ("one/app", "v2"): push_image(client, "one/app", "v2"),
            ("two", "latest"): push_image(client, "two", "latest"),
        }
        layer = client.get(f"/v2/one/app/blobs/{pushed[('one/app', 'v1')].blobs[-1]}").content
    first.stop()
    shutil.rmtree(tmp_path / "data")

    second = start_s3_registry(s3_server, tmp_path / "fresh", bucket=first.bucket)
    servers.append(second)
    with _client(second) as client:
        assert client.get("/v2/_catalog").json()["repositories"] == ["one/app", "two"]
        assert client.get("/v2/one/app/tags/list").json()["tags"] == ["v1", "v2"]
        for (repo, tag), image in pushed.items():
            resp = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.media_type})
            assert resp.status_code == 200, (repo, tag, resp.text)
            assert resp.content == image.body
            for blob in image.blobs:
                assert client.head(f"/v2/{repo}/blobs/{blob}").status_code == 200
        again = client.get(f"/v2/one/app/blobs/{pushed[('one/app', 'v1')].blobs[-1]}")
        assert again.status_code == 200 and again.content == layer
    _clean_log(second)


def test_mount_and_delete_across_repositories_lose_nothing(s3_registry: S3Registry) -> None:
    """A cross-repository mount on S3 (with ``from``, without, or a pusher's HEAD) is a
    server-side copy: the blob stays readable everywhere after the source deletes its own."""
    data = random_blob(2 * MiB)
    with _client(s3_registry) as client:
        digest = push_blob(client, "source/app", data)
        mounted = client.post(
            "/v2/target/app/blobs/uploads/", params={"mount": digest, "from": "source/app"}
        )
        assert mounted.status_code == 201, mounted.text
        # Without ``from``, and by a HEAD (zot's check-blob), the dedupe map finds a copy.
        anywhere = client.post("/v2/third/app/blobs/uploads/", params={"mount": digest})
        assert anywhere.status_code == 201, anywhere.text
        assert client.get(f"/v2/fourth/app/blobs/{digest}").status_code == 404
        head = client.head(f"/v2/fourth/app/blobs/{digest}")
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
        assert client.delete(f"/v2/source/app/blobs/{digest}").status_code == 202
        assert client.get(f"/v2/source/app/blobs/{digest}").status_code == 404
        for repo in ("target/app", "third/app", "fourth/app"):
            resp = client.get(f"/v2/{repo}/blobs/{digest}")
            assert resp.status_code == 200 and resp.content == data, repo
    _clean_log(s3_registry)


def _readyz(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=30)


def test_missing_bucket_fails_verify_and_readyz_until_it_exists(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """``verify`` asks the bucket (exit 2, the key named); ``serve`` starts anyway and
    ``/readyz`` stays 503 until the bucket answers, then turns ready on its own."""
    bucket = f"missing-{free_port()}"
    config = write_config(tmp_path / "s3.json", s3_config(s3_server, tmp_path / "data", bucket))
    proc = dockyard_s3("verify", str(config))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "storage.storageDriver" in proc.stderr and bucket in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket)
    servers.append(server)
    assert _readyz(server).status_code == 503

    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    _wait_ready(server)
    assert dockyard_s3("verify", str(config)).returncode == 0
    with _client(server) as registry:
        push_image(registry, "lost/app", "v1")

    # The bucket goes away under a running server: not ready, the root named; back: ready.
    for key in s3_server.keys(bucket, ""):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)
    resp = _readyz(server)
    assert resp.status_code == 503, resp.text
    assert str(tmp_path / "data") in resp.json()["roots"], resp.text
    client.create_bucket(Bucket=bucket)
    _wait_ready(server)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 60
    while (resp := _readyz(server)).status_code != 200:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.2)


def test_unreachable_endpoint_fails_verify_quickly(s3_server: S3Server, tmp_path: Path) -> None:
    """An endpoint nobody listens on is named by ``verify`` within seconds (exit 2)."""
    config = s3_config(s3_server, tmp_path / "data", "registry")
    config["storage"]["storageDriver"]["regionendpoint"] = f"127.0.0.1:{free_port()}"
    path = write_config(tmp_path / "s3.json", config)
    started = time.monotonic()
    proc = dockyard_s3("verify", str(path), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "storage.storageDriver: bucket 'registry' cannot be reached" in proc.stderr
    assert time.monotonic() - started < 30


def test_subpath_with_its_own_bucket_and_credentials_from_the_environment(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """A ``subPaths`` entry has its own ``storageDriver`` (an endpoint with a scheme, no
    keys: boto3 takes them from the AWS_* variables); its repositories land in its bucket
    and the default root's in the other."""
    main_bucket, sub_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", main_bucket)
    sub_driver = s3_server.driver(sub_bucket, "/sub", keys=False)
    sub_driver["regionendpoint"] = s3_server.endpoint
    config["storage"]["subPaths"] = {
        "/edge": {"rootDirectory": str(tmp_path / "edge"), "storageDriver": sub_driver}
    }
    path = write_config(tmp_path / "s3.json", config)
    assert dockyard_s3("verify", str(path)).returncode == 0
    server = start_s3_registry(s3_server, tmp_path / "data", config=config)
    servers.append(server)
    with _client(server) as client:
        push_image(client, "edge/app", "v1")
        push_image(client, "core/app", "v1")
        assert client.get("/v2/_catalog").json()["repositories"] == ["core/app", "edge/app"]
    assert "sub/edge/app/index.json" in s3_server.keys(sub_bucket, "sub")
    assert "dockyard/core/app/index.json" in s3_server.keys(main_bucket)
    assert not any("edge" in key for key in s3_server.keys(main_bucket))
    assert _readyz(server).status_code == 200


def test_gc_and_scrub_work_on_the_bucket(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """``dockyard gc`` removes a deleted image's blobs and an abandoned upload (its
    segments too) from the bucket and keeps the other image's; ``dockyard scrub`` finds
    an object whose bytes were changed in the bucket."""
    bucket = s3_server.new_bucket()
    config = s3_config(s3_server, tmp_path / "data", bucket)
    config["storage"] |= {"gcDelay": "0s"}
    path = write_config(tmp_path / "s3.json", config)
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    with _client(server) as client:
        kept = push_image(client, "gc/app", "keep")
        gone = push_image(client, "gc/app", "drop")
        assert client.delete(f"/v2/gc/app/manifests/{gone.digest}").status_code == 202
        # An abandoned upload: its state object and its segments (one of 8 MiB, one small).
        url = start_upload(client, "gc/app")
        piece = random_blob(9 * MiB)
        resp = client.patch(url, content=piece, headers={"Content-Range": f"0-{len(piece) - 1}"})
        assert resp.status_code == 202, resp.text
    assert len([k for k in s3_server.keys(bucket) if "/.uploads/" in k]) >= 3
    server.stop()

    proc = dockyard_s3("gc", str(path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys = set(s3_server.keys(bucket))
    blob_key = "dockyard/gc/app/blobs/sha256/{}".format
    for digest in gone.blobs:
        assert blob_key(digest.removeprefix("sha256:")) not in keys, proc.stdout
    for digest in [kept.digest, *kept.blobs]:
        assert blob_key(digest.removeprefix("sha256:")) in keys
    assert [key for key in keys if "/.uploads/" in key] == [], "an abandoned upload was kept"

    layer = blob_key(kept.blobs[-1].removeprefix("sha256:"))
    s3_server.client().put_object(Bucket=bucket, Key=layer, Body=b"rotten bytes")
    proc = dockyard_s3("scrub", str(path), "--dry-run", timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert kept.blobs[-1] in proc.stdout + proc.stderr


def test_an_outage_answers_503_and_the_server_recovers_by_itself(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """With the link to S3 cut, requests that need the bucket get 503 with the spec's JSON
    body and Retry-After (no traceback), and /readyz is 503; restored, everything works
    again without a restart, and nothing acknowledged before was lost."""
    link = TcpLink(int(s3_server.endpoint.rsplit(":", 1)[1]))
    try:
        bucket = s3_server.new_bucket()
        config = s3_config(s3_server, tmp_path / "data", bucket)
        config["storage"]["storageDriver"]["regionendpoint"] = f"127.0.0.1:{link.port}"
        server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
        servers.append(server)
        with _client(server) as client:
            before = push_image(client, "outage/app", "v1")
            layer = before.blobs[-1]
            link.cut()
            time.sleep(0.2)  # past the cached index's revalidation window
            for method, url in [
                ("GET", f"/v2/outage/app/blobs/{layer}"),
                ("GET", "/v2/outage/app/manifests/v1"),
                ("POST", "/v2/outage/app/blobs/uploads/"),
            ]:
                resp = client.request(method, url)
                assert resp.status_code == 503, (method, url, resp.status_code, resp.text)
                assert resp.json()["errors"][0]["code"] == "UNAVAILABLE"
                assert int(resp.headers["Retry-After"]) > 0
            assert _readyz(server).status_code == 503

            link.restore()
            _wait_ready(server)
            resp = client.get("/v2/outage/app/manifests/v1", headers={"Accept": before.media_type})
            assert resp.status_code == 200 and resp.content == before.body
            assert client.get(f"/v2/outage/app/blobs/{layer}").status_code == 200
            push_image(client, "outage/app", "v2")
        assert "Traceback" not in server.output()
    finally:
        link.close()


#: A blob several times the segment and read sizes, yet light on moto's memory.
LARGE = 256 * MiB
#: The server's peak RSS bound on S3: the local bound (100 MiB) plus boto3's own
#: footprint (its import and clients: about 40 MiB), never the blob's size.
S3_RSS_LIMIT = 150 * MiB


def test_a_large_blob_streams_through_in_bounded_memory(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """256 MiB pushed as one streamed PATCH and pulled back: intact, and the server's peak
    RSS stays far below the blob (nothing holds it whole, on S3 as on the local disk)."""
    server = start_s3_registry(s3_server, tmp_path / "data")
    servers.append(server)
    assert server.proc is not None
    sent = hashlib.sha256()
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(300, connect=10)) as client:
        started = time.perf_counter()
        url = start_upload(client, "large/app")
        patch = client.patch(url, content=payload(LARGE, sent))
        assert patch.status_code == 202, patch.text
        digest = "sha256:" + sent.hexdigest()
        put = client.put(with_params(location_url(patch), {"digest": digest}))
        assert put.status_code == 201, put.text
        push_seconds = time.perf_counter() - started

        got, received = hashlib.sha256(), 0
        started = time.perf_counter()
        with client.stream("GET", f"/v2/large/app/blobs/{digest}") as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_bytes(CHUNK):
                got.update(chunk)
                received += len(chunk)
        pull_seconds = time.perf_counter() - started
    assert received == LARGE and "sha256:" + got.hexdigest() == digest
    peaks = {pid: vm_hwm(pid) for pid in process_tree(server.proc.pid)}
    print(
        f"\n{LARGE // MiB} MiB on S3 (moto): push {LARGE / MiB / push_seconds:.0f} MiB/s, "
        f"pull {LARGE / MiB / pull_seconds:.0f} MiB/s, peak RSS "
        + ", ".join(f"pid {pid}: {peak / MiB:.1f} MiB" for pid, peak in peaks.items())
    )
    for pid, peak in peaks.items():
        assert peak < S3_RSS_LIMIT, f"server process {pid} peaked at {peak / MiB:.1f} MiB"


def test_workers_and_extensions_serve_an_s3_root(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """Two worker processes, search, metrics and the scrub schedule on an S3 root: a push
    through one worker is found by search and scrubbed from the bucket, with a clean log."""
    bucket = s3_server.new_bucket()
    config = s3_config(
        s3_server,
        tmp_path / "data",
        bucket,
        {
            "extensions": {
                "search": {"enable": True},
                "metrics": {"enable": True},
                "scrub": {"enable": True, "interval": "1s"},
            }
        },
    )
    server = start_s3_registry(
        s3_server, tmp_path / "data", "--workers", "2", bucket=bucket, config=config
    )
    servers.append(server)
    with _client(server) as client:
        pushed = push_image(client, "found/app", "v1", layers=2)
        query = '{ GlobalSearch(query: "found") { Repos { Name } } }'
        deadline = time.monotonic() + 60
        while True:
            found = client.post("/v2/_zot/ext/search", json={"query": query})
            assert found.status_code == 200, found.text
            if found.json()["data"]["GlobalSearch"]["Repos"]:
                break
            assert time.monotonic() < deadline, found.text
            time.sleep(0.5)
        assert found.json()["data"]["GlobalSearch"]["Repos"] == [{"Name": "found/app"}]
        checked = 0.0
        while checked < len(pushed.blobs):
            assert time.monotonic() < deadline, "the scrub never checked the pushed blobs"
            time.sleep(0.5)
            for line in client.get("/metrics").text.splitlines():
                if line.startswith("dockyard_scrub_last_checked_blobs "):
                    checked = float(line.split()[1])
    _clean_log(server)


def test_a_reload_keeps_the_bucket_and_says_a_restart_is_needed(
    s3_registry: S3Registry, s3_server: S3Server
) -> None:
    """SIGHUP with another bucket in the file: the warning names storage.storageDriver,
    and the running server keeps serving (and writing) the bucket it started on."""
    path = Path(s3_registry.args[0])
    doc = json.loads(path.read_text())
    other = s3_server.new_bucket()
    doc["storage"]["storageDriver"]["bucket"] = other
    write_json_atomically(path, doc)
    signal_server(s3_registry, signal.SIGHUP)
    wait_for(lambda: "storage.storageDriver" in s3_registry.output(), 20, "the restart warning")
    with _client(s3_registry) as client:
        push_image(client, "after/reload", "v1")
    assert "dockyard/after/reload/index.json" in s3_server.keys(s3_registry.bucket)
    assert s3_server.keys(other) == []
