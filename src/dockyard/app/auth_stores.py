"""Where a config's API keys and browser sessions live: the seam between auth's stores
and the store the config describes.

One machine (its worker processes share the root's private folder) keeps both in SQLite
there, as it always did. Replicas whose default root is in a bucket and coordinated by a
``cacheDriver`` share no folder: a key made through one must work on every one, and a
browser logged in on one must be logged in on all. So they keep API keys, durable facts,
in the bucket (validated per replica by a version in Redis: ``auth/apikey_bucket.py``),
and browser sessions, which a new login replaces, in Redis (``auth/redis_sessions.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.app.storage_roots import cache_drivers, redis_settings
from dockyard.auth.apikey_store import ApiKeyStore, KeyStore
from dockyard.auth.sessions import DB_FILE, Sessions, SessionStore
from dockyard.config import Config
from dockyard.storage.paths import private_dir
from dockyard.storage.store import Store

if TYPE_CHECKING:
    from dockyard.storage.shared.redis_client import RedisSettings


def shared_auth(config: Config, store: Store) -> RedisSettings | None:
    """The Redis of the default root when replicas share it through a bucket (its
    layouts are remote and it names a ``cacheDriver``); None for one machine."""
    found = cache_drivers(config).get("")
    if found is None or not store.default.root.remote:
        return None
    return redis_settings("", found[1])


def key_store(config: Config, store: Store) -> KeyStore:
    """The API keys' store: the bucket for replicas, else SQLite under the root."""
    shared = shared_auth(config, store)
    if shared is None:
        return ApiKeyStore(Path(config.storage.root_directory).absolute())
    from dockyard.auth.apikey_bucket import BucketKeyStore
    from dockyard.storage.shared.redis_client import async_client, sync_client

    root = store.default.root
    clients = sync_client(shared.url), async_client(shared.url)
    return BucketKeyStore(root.backend, root.path, *clients, shared.namespace)


def session_store(config: Config, store: Store) -> SessionStore:
    """The browser sessions' store: Redis for replicas, else SQLite under the root, which
    every worker process of the machine shares."""
    shared = shared_auth(config, store)
    if shared is None:
        return Sessions(private_dir(store.default.root.path) / DB_FILE)
    from dockyard.auth.redis_sessions import RedisSessions
    from dockyard.storage.shared.redis_client import async_client

    return RedisSessions(async_client(shared.url), shared.namespace)
