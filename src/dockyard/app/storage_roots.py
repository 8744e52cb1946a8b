"""The storage roots a config describes (the default one and one per ``subPaths`` entry),
and the store built on them.

One function reads the roots, used both to build the store at start-up and to compare a
reloaded config with the running one, so the two can never read the config differently.
It imports no HTTP code: ``dockyard gc``, ``scrub`` and ``sync`` build their store here
without loading the server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.config import Config
from dockyard.config.storage import CacheDriver, StorageDriver
from dockyard.storage.coordination import Coordination
from dockyard.storage.root import RootSettings
from dockyard.storage.s3settings import S3Settings
from dockyard.storage.store import Store

if TYPE_CHECKING:
    from dockyard.storage.shared.redis_client import RedisSettings


def s3_settings(driver: StorageDriver | None) -> S3Settings | None:
    """The bucket a ``storageDriver`` names (None: the layouts stay on the local disk)."""
    if driver is None:
        return None
    return S3Settings(
        bucket=driver.bucket,
        prefix=driver.root_directory.strip("/"),
        region=driver.region,
        endpoint=driver.region_endpoint,
        secure=driver.secure,
        skip_verify=driver.skip_verify,
        access_key=driver.access_key,
        secret_key=driver.secret_key,
        redirect=driver.redirect,
    )


def root_settings(config: Config) -> tuple[RootSettings, dict[str, RootSettings]]:
    """(default root, ``subPaths`` prefix -> root) with every path made absolute."""
    storage = config.storage

    def settings(
        root: Path, dedupe: bool, gc: bool, gc_delay: float, driver: StorageDriver | None
    ) -> RootSettings:
        return RootSettings(
            root.absolute(),
            s3=s3_settings(driver),
            dedupe=dedupe,
            gc=gc,
            gc_delay=gc_delay,
            gc_interval=storage.gc_interval,
            retention_delay=storage.retention.delay,
        )

    default = settings(
        storage.root_directory,
        storage.dedupe,
        storage.gc,
        storage.gc_delay,
        storage.storage_driver,
    )
    subs = {
        prefix: settings(sub.root_directory, sub.dedupe, sub.gc, sub.gc_delay, sub.storage_driver)
        for prefix, sub in storage.sub_paths.items()
    }
    return default, subs


def cache_drivers(config: Config) -> dict[str, tuple[str, CacheDriver]]:
    """``subPaths`` prefix ("" for the default root) -> (its config key, its cacheDriver),
    for the roots that name one."""
    storage = config.storage
    found = {}
    if storage.cache_driver is not None:
        found[""] = ("storage.cacheDriver", storage.cache_driver)
    for prefix, sub in storage.sub_paths.items():
        if sub.cache_driver is not None:
            key = f"storage.subPaths.{prefix}.cacheDriver"
            found[prefix.strip("/")] = (key, sub.cache_driver)
    return found


def redis_settings(prefix: str, driver: CacheDriver) -> RedisSettings:
    """A root's keys: ``<keyprefix>:root`` for the default root, ``<keyprefix>:sub:<prefix>``
    for a ``subPaths`` entry: the same on every replica, whatever its local paths."""
    # Imported only for a config that names a cacheDriver: a single node never loads redis.
    from dockyard.storage.shared.redis_client import RedisSettings

    namespace = f"{driver.keyprefix}:root" if not prefix else f"{driver.keyprefix}:sub:{prefix}"
    return RedisSettings(driver.url, namespace, driver.lock_expiry)


def shared_coordination(config: Config) -> Callable[[str], Coordination | None]:
    """What each root shares with the other replicas, by ``subPaths`` prefix: Redis where
    the root names a ``cacheDriver``, else None (this machine's flock and mmap)."""
    drivers = cache_drivers(config)

    def coordination(prefix: str) -> Coordination | None:
        found = drivers.get(prefix)
        if found is None:
            return None
        from dockyard.storage.shared.redis_coordination import redis_coordination

        driver = found[1]
        return redis_coordination(redis_settings(prefix, driver), driver.keyprefix)

    return coordination


def build_store(config: Config, *, read_only: bool = False) -> Store:
    """The store a config describes: the default root and one root per ``subPaths`` entry,
    each coordinated through its ``cacheDriver`` when it names one.

    ``read_only`` for a look that must write nothing (``gc --dry-run``).
    """
    default, subs = root_settings(config)
    return Store(default, subs, read_only=read_only, shared=shared_coordination(config))
