"""Upstreams for the mirroring tests: Debian's docker-registry, and configs that point
a dockyard at them.

docker-registry is distribution 2.8 as Debian ships it, configured with a YAML file
(filesystem storage, loopback address, htpasswd with bcrypt). It is required: if it is
missing these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from auth_helpers import write_htpasswd
from bearer_helpers import TOKEN_SERVER, signing_key
from conftest import free_port

DOCKER_REGISTRY = "/usr/bin/docker-registry"
UPSTREAM_USER, UPSTREAM_PASSWORD = "mirror", "mirror-pw"


@dataclass
class DockerRegistry:
    """A running docker-registry with htpasswd; stop and start it again on the same port."""

    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        htpasswd = write_htpasswd(self.folder / "htpasswd", {UPSTREAM_USER: UPSTREAM_PASSWORD})
        config = self.folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            "storage:\n"
            f"  filesystem: {{rootdirectory: {self.folder / 'data'}}}\n"
            "  delete: {enabled: true}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
            f"auth: {{htpasswd: {{realm: upstream, path: {htpasswd}}}}}\n"
        )
        log = open(self.folder / "registry.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(UPSTREAM_USER, UPSTREAM_PASSWORD), timeout=30)


@contextmanager
def docker_registry(folder: Path) -> Iterator[DockerRegistry]:
    folder.mkdir(parents=True, exist_ok=True)
    upstream = DockerRegistry(folder, free_port())
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


def write_credentials(path: Path, hosts: list[str]) -> Path:
    """zot's credentialsFile giving the test upstream's user for each ``host:port``."""
    entries = {h: {"username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD} for h in hosts}
    path.write_text(json.dumps(entries))
    return path


def sync_config(
    path: Path,
    registries: list[dict[str, Any]],
    credentials: Path | None = None,
    **top: Any,
) -> Path:
    """A dockyard config whose ``extensions.sync`` lists ``registries``."""
    sync: dict[str, Any] = {"enable": True, "registries": registries}
    if credentials is not None:
        sync["credentialsFile"] = str(credentials)
    config: dict[str, Any] = {"distSpecVersion": "1.1.1", **top}
    config.setdefault("extensions", {})["sync"] = sync
    path.write_text(json.dumps(config, indent=2))
    return path


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def log_records(output: str) -> list[dict[str, Any]]:
    """The JSON records of a dockyard server log; a line that is not JSON (a traceback
    printed past the logger) becomes ``{"level": "raw", "message": line}``."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        records.append(record if isinstance(record, dict) else {"level": "raw", "message": line})
    return records


def quiet_log(output: str) -> list[dict[str, Any]]:
    """Assert a server log holds no error line, no traceback and no stray output (what a
    failing upstream may leave is a warning); return its warnings for the caller to check."""
    records = log_records(output)
    loud = [
        r
        for r in records
        if r.get("level") in ("error", "critical", "raw") or "error" in r or "Traceback" in str(r)
    ]
    assert not loud, "\n".join(json.dumps(r) for r in loud)
    return [r for r in records if r.get("level") == "warning"]


@dataclass
class TokenServer:
    """The test token server (its own process): where to ask, and what it answered."""

    realm: str
    #: The certificate an upstream verifies its tokens with.
    cert: Path

    def requests(self) -> list[dict[str, Any]]:
        """Every token request answered so far: ``user``, ``scopes``, ``time``."""
        url = self.realm.rsplit("/", 1)[0] + "/requests"
        answered: list[dict[str, Any]] = httpx.get(url, timeout=10).json()
        return answered


@contextmanager
def token_server(folder: Path, policy: dict[str, Any]) -> Iterator[TokenServer]:
    """Run ``token_server.py`` with ``policy`` (see bearer_helpers.TOKEN_POLICY)."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = signing_key(folder, "token-signer")
    (folder / "policy.json").write_text(json.dumps(policy))
    port = free_port()
    args = ["--port", str(port), "--key", str(key_path), "--config", str(folder / "policy.json")]
    proc = subprocess.Popen([sys.executable, str(TOKEN_SERVER), *args])
    server = TokenServer(f"http://127.0.0.1:{port}/token", cert_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.requests()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "token server did not start"
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
