"""Replicas: separate ``dockyard serve`` processes (``--workers 1``, own ports) on one
storage root, coordinated through one redis-server, as several machines would be."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from conftest import Server, start_server

#: Short, so a test of a dead holder waits seconds, not the default 30 s.
LOCK_EXPIRY = 3.0


def replica_config(folder: Path, root: Path, url: str, keyprefix: str) -> Path:
    """A config naming the shared root and Redis (zot's ``cacheDriver``)."""
    config = folder / f"replica-{uuid.uuid4().hex[:6]}.json"
    driver = {
        "name": "redis",
        "url": url,
        "keyprefix": keyprefix,
        "lockExpiry": f"{LOCK_EXPIRY:g}s",
    }
    storage = {"rootDirectory": str(root), "remoteCache": True, "cacheDriver": driver}
    config.write_text(json.dumps({"storage": storage}))
    return config


def start_replicas(folder: Path, url: str, count: int = 2) -> tuple[list[Server], str]:
    """``count`` replicas of one root and one Redis; (servers, their key prefix)."""
    root = folder / "shared-root"
    keyprefix = f"dy{uuid.uuid4().hex[:8]}"
    config = replica_config(folder, root, url, keyprefix)
    return [start_server(root, config=config) for _ in range(count)], keyprefix
