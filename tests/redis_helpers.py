"""A real Redis for the scale-out tests: Debian's ``redis-server``, started on loopback.

Nothing is persisted (no RDB, no AOF), so each test process starts empty; tests take a
namespace of their own rather than flushing what another test uses.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from conftest import free_port


@dataclass
class RedisServer:
    url: str
    proc: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/test installs Debian's redis-server"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, *args, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(f"redis://127.0.0.1:{port}/0", proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.client().ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


def _spawn(binary: str, port: int, folder: Path) -> subprocess.Popen[bytes]:
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return subprocess.Popen(
        [binary, *args, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_answering(server: RedisServer, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.client().ping()
            return
        except redis.ConnectionError:
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def spawn_redis(folder: Path) -> RedisServer:
    """A redis-server of the caller's own on a free port, answering; the caller stops it."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/test installs Debian's redis-server"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = RedisServer(f"redis://127.0.0.1:{port}/0", _spawn(binary, port, folder))
    wait_answering(server)
    return server


@dataclass
class OwnRedis(RedisServer):
    """A redis-server of one test, which the test may stop and start again (same port)."""

    port: int = 0
    folder: Path = Path()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary
        self.proc = _spawn(binary, self.port, self.folder)
        wait_answering(self)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/test installs Debian's redis-server"
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    server = OwnRedis(f"redis://127.0.0.1:{port}/0", _spawn(binary, port, folder), port, folder)
    try:
        wait_answering(server)
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.terminate()
            server.proc.wait(10)
