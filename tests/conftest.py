"""Shared fixtures: a real dockyard server started as a subprocess on a free port.

Tests drive it over HTTP exactly as a client would; nothing is imported from the
server process, so a test passes only if the running registry behaves.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """Ask the kernel for a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running dockyard process and how to reach it."""

    root: Path
    port: int
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: For a server on HTTPS: the client context that trusts it (and may hold a client cert).
    tls: ssl.SSLContext | None = None
    #: ``--workers`` added unless the args name it; None: dockyard's default (one per CPU).
    #: The suite pins one: its tests read one process's state (its open files, its log
    #: lines, its counters) and run two at a time on two cores; tests/workers/ starts
    #: several workers on purpose.
    workers: int | None = 1

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """host:port, the form skopeo and oras take in references."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.log = self.root.parent / f"server-{self.port}-{uuid.uuid4().hex[:6]}.log"
        cmd = [sys.executable, "-m", "dockyard", "serve", *self.args]
        if self.workers is not None and "--workers" not in self.args:
            cmd += ["--workers", str(self.workers)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                # 401: up, and asking for credentials (auth configured).
                ready = httpx.get(f"{self.url}/v2/", timeout=1, verify=self.tls or True)
                if ready.status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text() if self.log else ""


def start_server(
    root: Path, *extra: str, config: Path | None = None, tls: ssl.SSLContext | None = None
) -> Server:
    """Start dockyard on a free port serving ``root`` (plus any extra CLI args).

    ``tls``: the server serves HTTPS (its config says so) and this context trusts it.
    """
    port = free_port()
    args = [str(config)] if config else []
    args += ["--address", "127.0.0.1", "--port", str(port), "--root", str(root), *extra]
    server = Server(root=root, port=port, args=args, tls=tls)
    server.start()
    return server


#: The S3 fixtures (``s3_server``: moto's server on loopback), for every test module.
pytest_plugins = ["s3_helpers"]
#: The folder whose tests use ``registry`` on both storages: the local disk and S3.
BOTH_STORAGES = Path(__file__).parent / "spec"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The spec tests run against a registry on the local disk, one on S3 (moto), and
    three replicas on one bucket and one Redis behind a round-robin proxy."""
    if "registry" in metafunc.fixturenames and metafunc.definition.path.is_relative_to(
        BOTH_STORAGES
    ):
        metafunc.parametrize(
            "registry", ["local", "s3", "replicas"], indirect=True, scope="session"
        )


@pytest.fixture(scope="session")
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server shared by the tests that only need a registry to talk to.

    Tests using it pick unique repository names (see ``repo``), so they never collide.
    Under ``tests/spec/`` it is parametrized: ``local`` (the default), ``s3``, its
    layouts in a bucket of moto's S3 server, or ``replicas``: three replicas, each with
    its own local folder, on one bucket and a redis-server of their own, reached through
    a round-robin proxy (the answer's ``port`` is the proxy's).
    """
    storage = getattr(request, "param", "local")
    root = tmp_path_factory.mktemp(f"shared-{storage}") / "data"
    if storage == "replicas":
        from redis_helpers import spawn_redis
        from scaleout_helpers import start_cluster

        redis = spawn_redis(root.parent / "redis")
        try:
            cluster = start_cluster(request.getfixturevalue("s3_server"), redis.url, root.parent)
            try:
                yield Server(root=root, port=cluster.front.port, args=[])
            finally:
                cluster.stop()
        finally:
            redis.proc.terminate()
            redis.proc.wait(10)
        return
    if storage == "s3":
        from s3_helpers import start_s3_registry

        server: Server = start_s3_registry(request.getfixturevalue("s3_server"), root)
    else:
        server = start_server(root)
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, on an empty root, for tests that inspect the disk."""
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test, valid under the spec's grammar."""
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(registry: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        yield c
