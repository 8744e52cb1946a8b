"""The dedupe map's contract, held by the SQLite map and the Redis one alike.

The Redis map runs against Debian's redis-server on loopback. Both keep paths relative to
the root, drop a digest with its last reference, and are hints: losing them loses no blob.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from redis_helpers import RedisServer, redis_server  # noqa: F401 - the fixture

from dockyard.storage.dedupe.locations import BlobLocations, LocationMap
from dockyard.storage.dedupe.redis_locations import RedisLocations

D1, D2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
MapOf = Callable[[Path], LocationMap]


@pytest.fixture(params=["sqlite", "redis"])
def make_map(request: pytest.FixtureRequest) -> Callable[[Path], LocationMap]:
    """A factory: the map of a root at a given path (the same data for every call)."""
    if request.param == "sqlite":
        return BlobLocations
    server: RedisServer = request.getfixturevalue("redis_server")
    namespace = f"dockyard-test:{uuid.uuid4().hex}"
    return lambda root: RedisLocations(root, server.client(), namespace)


def test_records_drop_the_digest_with_its_last_reference(make_map: MapOf, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    m: LocationMap = make_map(root)
    a, b = (
        root / "x" / "blobs" / "sha256" / ("a" * 64),
        root / "y" / "blobs" / "sha256" / ("a" * 64),
    )
    m.add(D1, b)
    m.add(D1, a)
    m.add(D1, a)  # twice: still one record
    m.add(D2, a.with_name("b" * 64))
    assert m.paths(D1) == [a, b]
    assert m.has_digest(D1)
    m.remove(D1, a)
    assert m.paths(D1) == [b] and m.has_digest(D1)
    m.remove_many([(D1, "y/blobs/sha256/" + "a" * 64), (D2, "x/blobs/sha256/" + "b" * 64)])
    assert m.paths(D1) == [] and not m.has_digest(D1) and not m.has_digest(D2)
    assert m.get_meta("adopted") is None
    m.set_meta("adopted", "1")
    assert m.get_meta("adopted") == "1"
    m.close()


def test_paths_are_relative_so_a_root_can_move(make_map: MapOf, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    m: LocationMap = make_map(old)
    m.add(D1, old / "r" / "blobs" / "sha256" / ("a" * 64))
    m.close()
    if isinstance(m, BlobLocations):
        old.rename(new)  # the SQLite map moves with the root's private folder
    else:
        new.mkdir()
    moved: LocationMap = make_map(new)
    assert moved.paths(D1) == [new / "r" / "blobs" / "sha256" / ("a" * 64)]
    moved.close()


def test_a_flushed_redis_only_forgets(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    """FLUSHALL empties the map; it holds nothing else, so callers fall back to the files."""
    m = RedisLocations(tmp_path, redis_server.client(), f"dockyard-test:{uuid.uuid4().hex}")
    m.add(D1, tmp_path / "r" / "blobs" / "sha256" / ("a" * 64))
    other = redis_server.client()
    other.set("dockyard-test:unrelated", "1")
    other.flushall()
    assert m.paths(D1) == [] and not m.has_digest(D1)
