"""Changing a running store's settings (config reload) without a restart.

What a root does can change under it: dedupe on or off, GC on or off, ``gcDelay``,
``gcInterval``, ``retention.delay``. Where it is cannot: a root's directory and the set
of ``subPaths`` prefixes decide where every repository lives, and moving them under
running requests would split a repository across two folders. Those are reported back by
name so the caller can say that a restart is needed.
"""

from __future__ import annotations

import dataclasses
import logging

from dockyard.storage.dedupe.adopt import adopt_root
from dockyard.storage.gc import Collector
from dockyard.storage.root import RootSettings
from dockyard.storage.store import RootServices, Store

log = logging.getLogger("dockyard.store")


def apply_settings(
    store: Store, default: RootSettings, sub_paths: dict[str, RootSettings]
) -> tuple[list[str], list[RootServices]]:
    """Apply what can change live; return (settings needing a restart, roots whose dedupe
    was just switched on and should be adopted again, see :func:`adopt_again`)."""
    restart: list[str] = []
    subs = {prefix.strip("/"): s for prefix, s in sub_paths.items()}
    if default.root != store.default.root.path:
        restart.append("storage.rootDirectory")
    if default.s3 != store.default.root.settings.s3:
        restart.append("storage.storageDriver")
    if set(subs) != set(store.sub_paths):
        restart.append("storage.subPaths")
    for prefix, settings in subs.items():
        running = store.sub_paths.get(prefix)
        if running is not None and settings.root != running.root.path:
            restart.append(f"storage.subPaths./{prefix}.rootDirectory")
        if running is not None and settings.s3 != running.root.settings.s3:
            restart.append(f"storage.subPaths./{prefix}.storageDriver")
    deduped = []
    pairs = [(store.default, default)]
    pairs += [(svc, subs[prefix]) for prefix, svc in store.sub_paths.items() if prefix in subs]
    for services, settings in pairs:
        if _apply_root(services, settings):
            deduped.append(services)
    store.settings_changed.set()
    return restart, deduped


def _apply_root(services: RootServices, settings: RootSettings) -> bool:
    """Switch one root to ``settings`` (its directory and bucket stay); True if dedupe
    came on."""
    root = services.root
    old = root.settings
    new = dataclasses.replace(settings, root=root.path, s3=old.s3)
    root.settings = new
    dedupe_on = new.dedupe and not old.dedupe
    if new.dedupe != old.dedupe:
        root.dedupe.switch(new.dedupe)
    if new.gc and services.collector is None:
        services.collector = Collector(root, new.gc_delay, new.retention_delay)
        services.manifests.on_unreferenced = services.collector.schedule
    elif not new.gc and services.collector is not None:
        services.collector = None
        services.manifests.on_unreferenced = lambda repo: None
    if services.collector is not None:
        services.collector.gc_delay = new.gc_delay
        services.collector.retention_delay = new.retention_delay
    if new != old:
        log.info("storage settings of %s are now %s", root.path, new)
    return dedupe_on


async def adopt_again(store: Store, services: RootServices) -> int:
    """Record and link the blobs published while dedupe was off; return bytes saved.

    The dedupe map knows nothing of them, so without this they would never be shared.
    """
    root = services.root
    locations = root.locations
    if locations is None:
        return 0
    await store.catalog.load()
    repo_dirs = [root.repo_dir(repo) for repo in store.repos_of(services)]
    saved = await adopt_root(root, locations, repo_dirs)
    log.info("dedupe switched on for %s: %d bytes saved", services.root.path, saved)
    return saved
