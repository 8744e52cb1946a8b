"""Blob pulls from a root on S3 (moto's server): streamed from a presigned GET by the
server, or, with ``storageDriver.redirect``, a 307 that sends the client to the bucket.

What a user relies on: the bytes and headers are those of a local root; a store that
fails mid-pull cuts the client's connection short (never a short blob taken for whole,
never a traceback); real clients (skopeo, podman) pull through the redirect (who may get one:
``tests/security/test_redirect_access.py``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from clients_helpers import Podman, Skopeo, assert_same_image
from conftest import Server, free_port
from images import build_image
from ops_helpers import access_lines
from s3_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Server,
    s3_config,
    start_s3_registry,
)
from spec_helpers import push_blob, random_blob
from tcp_link import TcpLink

MiB = 1024 * 1024


def _no_traceback(server: Server) -> None:
    output = server.output()
    assert "Traceback" not in output, output
    for line in output.splitlines():
        if line.startswith("{"):
            assert json.loads(line)["level"] != "error", line


def test_a_store_failing_mid_pull_cuts_the_connection_without_a_traceback(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """The link to S3 is reset while a 64 MiB blob streams: the client gets fewer bytes
    than its Content-Length and a protocol error, the server logs one warning and no
    traceback, and once the link is back the same blob is pulled whole."""
    link = TcpLink(int(s3_server.endpoint.rsplit(":", 1)[1]))
    try:
        bucket = s3_server.new_bucket()
        config = s3_config(s3_server, tmp_path / "data", bucket)
        config["storage"]["storageDriver"]["regionendpoint"] = f"127.0.0.1:{link.port}"
        server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
        servers.append(server)
        data = random_blob(64 * MiB)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            digest = push_blob(client, "cut/app", data)
            received = 0
            with (
                pytest.raises(httpx.RemoteProtocolError),
                client.stream("GET", f"/v2/cut/app/blobs/{digest}") as resp,
            ):
                assert resp.status_code == 200
                assert int(resp.headers["Content-Length"]) == len(data)
                for chunk in resp.iter_raw(64 * 1024):
                    if received == 0:
                        link.cut()  # the server has read only what buffers hold
                    received += len(chunk)
            assert 0 < received < len(data)
            link.restore()
            whole = client.get(f"/v2/cut/app/blobs/{digest}")
            assert whole.status_code == 200 and whole.content == data
        _no_traceback(server)
        assert "the object store failed after" in server.output()
    finally:
        link.close()


def _redirect_registry(s3_server: S3Server, tmp_path: Path, servers: list[Server]) -> Server:
    config = s3_config(s3_server, tmp_path / "data", s3_server.new_bucket())
    config["storage"]["storageDriver"]["redirect"] = True
    server = start_s3_registry(s3_server, tmp_path / "data", config=config)
    servers.append(server)
    return server


def test_skopeo_and_podman_pull_through_the_redirect(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """skopeo and podman follow the 307s to moto and get the identical image; every
    blob GET the server answered was a redirect, so no layer went through it."""
    server = _redirect_registry(s3_server, tmp_path, servers)
    skopeo = Skopeo(tmp_path / "skopeo-home")
    image = build_image(tmp_path / "src", "v1")
    skopeo.push(image.layout, "v1", f"{server.host}/team/app:v1")
    out = tmp_path / "out"
    skopeo.pull(f"{server.host}/team/app:v1", out, "v1")
    assert_same_image(out, "v1", image)

    podman = Podman(tmp_path / "podman")
    podman.run("pull", "--tls-verify=false", f"{server.host}/team/app:v1")
    image_id = podman.run("image", "inspect", "--format", "{{.Id}}", f"{server.host}/team/app:v1")
    assert f"sha256:{image_id.strip()}" == image.config.digest

    def blob_gets() -> list[int]:
        return [
            int(line["status"])
            for line in access_lines(server.output())
            if line.get("method") == "GET" and "/blobs/sha256:" in str(line.get("path"))
        ]

    deadline = time.monotonic() + 10
    while len(blob_gets()) < 2 * len(image.layers) and time.monotonic() < deadline:
        time.sleep(0.1)
    statuses = blob_gets()
    assert len(statuses) >= 2 * len(image.layers), statuses
    assert set(statuses) == {307}, statuses
    _no_traceback(server)


def test_pulls_stream_whole_and_exact_without_redirect(
    s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """Redirect off (the default): the server streams the blob itself, 200 with the
    exact bytes and a digest that matches, for a blob of many socket reads."""
    server = start_s3_registry(s3_server, tmp_path / "data")
    servers.append(server)
    data = random_blob(20 * MiB + 5)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        digest = push_blob(client, "plain/app", data)
        got = client.get(f"/v2/plain/app/blobs/{digest}")
        assert got.status_code == 200 and "Location" not in got.headers
        assert got.headers["Docker-Content-Digest"] == digest
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == digest
    _no_traceback(server)


@pytest.fixture
def tls_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A second moto server speaking only HTTPS, with a self-signed certificate."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    with open(tmp_path / "moto-tls.log", "wb") as out:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port), "--ssl"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1, verify=False)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto --ssl"
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        proc.wait(10)


def test_skipverify_lets_pulls_stream_from_a_self_signed_https_store(
    tls_s3_server: S3Server, tmp_path: Path, servers: list[Server]
) -> None:
    """``secure`` with ``skipverify``: the server's own HTTP client streams the blob from
    the presigned https URL without checking the self-signed certificate, as boto3 does
    for every other call; the bytes arrive exact."""
    s3 = tls_s3_server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's unverified-HTTPS warning
        client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            verify=False,
        )
        bucket = f"tls-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
    config = s3_config(s3, tmp_path / "data", bucket)
    driver = config["storage"]["storageDriver"]
    driver |= {"regionendpoint": s3.endpoint.removeprefix("https://"), "secure": True}
    driver["skipverify"] = True
    server = start_s3_registry(s3, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    data = random_blob(5 * MiB + 3)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        digest = push_blob(http, "tls/app", data)
        got = http.get(f"/v2/tls/app/blobs/{digest}")
        assert got.status_code == 200, got.text
        assert got.content == data
    assert "Traceback" not in server.output()
