"""A real S3 server for the object-storage tests: moto's, started on loopback.

It is a separate process speaking S3's HTTP API, so the tests exercise boto3, the wire
format and the server's checks (conditional writes, multipart rules) as against AWS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from conftest import Server, free_port
from ops_helpers import wait_for

from dockyard.storage.s3backend import S3Settings

ACCESS_KEY, SECRET_KEY, REGION = "dockyard-test", "dockyard-test-secret", "us-east-1"
#: The server's own AWS_* variables: whatever the machine's environment holds (a real
#: profile, another endpoint) must not reach a client pointed at moto.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def settings(self, bucket: str, prefix: str = "") -> S3Settings:
        return S3Settings(bucket, prefix, REGION, self.endpoint, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY)  # fmt: skip

    def driver(
        self, bucket: str, prefix: str = "/dockyard", *, keys: bool = True
    ) -> dict[str, Any]:
        """zot's ``storageDriver`` section for ``bucket`` (the endpoint without a scheme,
        ``secure`` false, as zot's examples write it); without ``keys`` the server takes
        its credentials from the AWS_* variables."""
        section: dict[str, Any] = {
            "name": "s3",
            "rootdirectory": prefix,
            "region": REGION,
            "regionendpoint": self.endpoint.removeprefix("http://"),
            "bucket": bucket,
            "secure": False,
            "skipverify": False,
        }
        if keys:
            section |= {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}
        return section

    def keys(self, bucket: str, prefix: str = "dockyard") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        found: list[str] = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix):
            found += [obj["Key"] for obj in page.get("Contents", [])]
        return found

    def new_bucket(self) -> str:
        name = f"registry-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts itself; stopped whatever happens."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server per test process; each test takes a bucket of its own."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class S3Registry(Server):
    """A dockyard server whose layouts live in ``bucket`` (``root`` is its local folder)."""

    bucket: str = ""


def s3_config(
    s3: S3Server, root: Path, bucket: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A config serving from ``bucket``, with ``root`` as the local private folder."""
    config: dict[str, Any] = {
        "storage": {"rootDirectory": str(root), "storageDriver": s3.driver(bucket)},
        "log": {"level": "info"},
    }
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def start_s3_registry(
    s3: S3Server,
    root: Path,
    *extra: str,
    bucket: str | None = None,
    config: dict[str, Any] | None = None,
) -> S3Registry:
    """Start dockyard serving from ``bucket`` (a new one when None) on a free port.

    ``config``: a whole config to write instead of :func:`s3_config`'s.
    """
    bucket = bucket or s3.new_bucket()
    doc = config if config is not None else s3_config(s3, root, bucket)
    path = root.parent / f"s3-config-{uuid.uuid4().hex[:6]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    port = free_port()
    args = [str(path), "--address", "127.0.0.1", "--port", str(port), *extra]
    server = S3Registry(root=root, port=port, args=args, env=dict(AWS_ENV), bucket=bucket)
    server.start()
    return server


def dockyard_s3(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m dockyard ARGS`` with the tests' own AWS_* variables."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **AWS_ENV},
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config))
    return path


def wait_for_adoption(server: Server, *, reload: bool = False) -> int:
    """The bytes dedupe adoption reports saved, once its log line is out: a server adopts
    a root in the background after it starts answering (``reload``: after a config
    reload switched dedupe on)."""
    started = r"dedupe switched on for \S+" if reload else r"dedupe adopted \S+"
    found = wait_for(
        lambda: re.search(started + r": (\d+) bytes saved", server.output()),
        60,
        "dedupe adoption to finish",
    )
    return int(found[1])
