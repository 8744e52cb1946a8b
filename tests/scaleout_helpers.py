"""Scale-out: replicas on one bucket and one Redis, each with its OWN local folder.

Each replica is a ``dockyard serve --workers 1`` process whose ``rootDirectory`` is a
folder no other replica sees (as on separate machines); the layouts are in one bucket of
moto's S3 server (``storageDriver``) and the coordination in one redis-server
(``cacheDriver``). A :class:`RoundRobinProxy` in front sends every request to the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from auth_helpers import write_htpasswd
from redis_helpers import RedisServer
from round_robin_proxy import RoundRobinProxy
from s3_helpers import S3Registry, S3Server, start_s3_registry

#: Short, so a dead holder's lock frees in seconds, not the default 30 s.
LOCK_EXPIRY = 3.0
#: The users of :func:`start_auth_cluster` (its htpasswd file is ``folder/htpasswd``).
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "admin": "admin-pw"}


def scaleout_config(
    s3: S3Server,
    root: Path,
    bucket: str,
    redis_url: str,
    keyprefix: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """zot's keys: layouts in ``bucket``, coordination in Redis, ``root`` local; ``extra``
    adds top-level sections (``http``, ``extensions``)."""
    cache = {
        "name": "redis",
        "url": redis_url,
        "keyprefix": keyprefix,
        "lockExpiry": f"{LOCK_EXPIRY:g}s",
    }
    storage = {
        "rootDirectory": str(root),
        "remoteCache": True,
        "storageDriver": s3.driver(bucket),
        "cacheDriver": cache,
    }
    return {"storage": storage, "log": {"level": "info"}, **(extra or {})}


@dataclass
class Cluster:
    """Replicas, the bucket and key prefix they share, and the proxy in front of them."""

    s3: S3Server
    redis_url: str
    folder: Path
    bucket: str
    keyprefix: str
    #: Sections every replica's config adds (auth, extensions).
    extra: dict[str, Any] = field(default_factory=dict)
    replicas: list[S3Registry] = field(default_factory=list)
    proxy: RoundRobinProxy | None = None

    def add_replica(self) -> S3Registry:
        root = self.folder / f"replica-{len(self.replicas)}-{uuid.uuid4().hex[:4]}" / "local"
        config = scaleout_config(
            self.s3, root, self.bucket, self.redis_url, self.keyprefix, self.extra
        )
        server = start_s3_registry(self.s3, root, bucket=self.bucket, config=config)
        self.replicas.append(server)
        return server

    @property
    def front(self) -> RoundRobinProxy:
        assert self.proxy is not None
        return self.proxy

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        for server in self.replicas:
            server.stop()


def start_cluster(
    s3: S3Server,
    redis_url: str,
    folder: Path,
    count: int = 3,
    extra: dict[str, Any] | None = None,
) -> Cluster:
    """``count`` replicas on a new bucket and key prefix, behind a round-robin proxy;
    ``extra``: sections every replica's config adds."""
    keyprefix = f"so{uuid.uuid4().hex[:8]}"
    cluster = Cluster(s3, redis_url, folder, s3.new_bucket(), keyprefix, dict(extra or {}))
    try:
        for _ in range(count):
            cluster.add_replica()
        cluster.proxy = RoundRobinProxy([server.port for server in cluster.replicas])
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_auth_cluster(
    s3: S3Server, redis_url: str, folder: Path, purge_interval: str = "1s"
) -> Cluster:
    """Three replicas with htpasswd logins (:data:`PASSWORDS`, ``admin`` in
    ``adminPolicy``), API keys, search and the web UI; the lease holder purges keys every
    ``purge_interval`` (the default: often enough for a test to see it)."""
    htpasswd = write_htpasswd(folder / "htpasswd", PASSWORDS)
    everyone = ["alice", "bob", "admin"]
    access = {
        "repositories": {"**": {"policies": [{"users": everyone, "actions": ["read", "create"]}]}},
        "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]},
    }
    extra = {
        "http": {
            "auth": {
                "htpasswd": {"path": str(htpasswd)},
                "apikey": True,
                "apikeyPurgeInterval": purge_interval,
            },
            "accessControl": access,
        },
        "extensions": {"search": {"enable": True}, "ui": {"enable": True}},
    }
    return start_cluster(s3, redis_url, folder, extra=extra)


def cluster_fixture(start: Callable[[S3Server, str, Path], Cluster]) -> Any:
    """A ``cluster`` fixture for a test module: ``start`` on the session's moto and Redis,
    stopped after the test. The module must also import ``redis_server`` (and see
    ``s3_server``) so pytest finds the fixtures it asks for."""

    @pytest.fixture
    def cluster(
        tmp_path: Path, s3_server: S3Server, redis_server: RedisServer
    ) -> Iterator[Cluster]:
        started = start(s3_server, redis_server.url, tmp_path)
        yield started
        started.stop()

    return cluster
