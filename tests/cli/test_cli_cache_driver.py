"""zot's ``storage.cacheDriver`` (and per ``subPaths``): only Redis is served; anything
else stops ``verify`` and ``serve`` with exit 2 naming the key; ``verify`` pings Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, config_doc, dockyard, write_json
from conftest import free_port
from redis_helpers import RedisServer, redis_server  # noqa: F401 - the fixture


def _with_storage(tmp_path: Path, **storage: Any) -> Path:
    doc = config_doc(tmp_path / "data")
    doc["storage"].update(storage)
    return write_json(tmp_path / "config.json", doc)


@pytest.mark.parametrize(
    ("storage", "key"),
    [
        ({"cacheDriver": {"name": "dynamodb", "url": "redis://x"}}, "storage.cacheDriver.name"),
        ({"cacheDriver": {"name": "redis", "url": "http://x:6379"}}, "storage.cacheDriver.url"),
        ({"cacheDriver": {"name": "redis"}}, "storage.cacheDriver.url"),
        (
            {"cacheDriver": {"name": "redis", "url": "redis://x", "lockExpiry": "0s"}},
            "storage.cacheDriver.lockExpiry",
        ),
        (
            {"remoteCache": False, "cacheDriver": {"name": "redis", "url": "redis://x"}},
            "storage.remoteCache",
        ),
        (
            {
                "subPaths": {
                    "team": {
                        "rootDirectory": "/tmp/team-root",
                        "cacheDriver": {"name": "boltdb", "url": "redis://x"},
                    }
                }
            },
            "storage.subPaths.team.cacheDriver.name",
        ),
    ],
)
def test_a_cache_driver_other_than_redis_exits_2_naming_the_key(
    tmp_path: Path, storage: dict[str, Any], key: str
) -> None:
    config = _with_storage(tmp_path, **storage)
    for command in ("verify", "serve"):
        proc = dockyard(command, str(config))
        assert proc.returncode == 2
        assert_one_line_error(proc, key)


def test_verify_pings_redis(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    sub = {"rootDirectory": str(tmp_path / "team"), "cacheDriver": {"name": "redis", "url": nobody}}
    config = _with_storage(
        tmp_path,
        remoteCache=True,
        cacheDriver={"name": "redis", "url": redis_server.url},
        subPaths={"team": sub},
    )
    proc = dockyard("verify", str(config))
    assert proc.returncode == 2
    line = assert_one_line_error(proc, "storage.subPaths.team.cacheDriver.url", "does not answer")
    assert "storage.cacheDriver.url" not in line  # the default root's Redis answers
    sub["cacheDriver"]["url"] = redis_server.url  # type: ignore[index]
    config = _with_storage(
        tmp_path,
        cacheDriver={"name": "redis", "url": redis_server.url},
        subPaths={"team": sub},
    )
    proc = dockyard("verify", str(config))
    assert proc.returncode == 0, proc.stderr


def test_the_replicas_example_verifies_against_a_real_redis(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """examples/config-replicas.json (the README's), pointed at the test's Redis and root:
    valid, with no warning."""
    example = Path(__file__).parents[2] / "examples" / "config-replicas.json"
    doc = json.loads(example.read_text())
    doc["storage"]["rootDirectory"] = str(tmp_path / "data")
    doc["storage"]["cacheDriver"]["url"] = redis_server.url
    doc["http"]["address"] = "127.0.0.1"
    proc = dockyard("verify", str(write_json(tmp_path / "replicas.json", doc)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
