"""Mirroring: zot's ``extensions.sync`` (on demand and periodic) and distribution's ``proxy``.

One module per concept: ``rules`` (which names, which tags, renames), ``credentials``,
``upstream`` (the HTTP client with TLS and the token dance), ``copy`` (verified manifest
copies), ``flights`` (verified, streamed, shared blob fetches), ``ondemand`` (the API's
miss hook), ``periodic`` (passes every ``pollInterval``), ``stats`` (metrics).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.config import Config
from dockyard.ext.sync.flights import Flights
from dockyard.ext.sync.ondemand import OnDemand
from dockyard.ext.sync.periodic import PeriodicSync
from dockyard.ext.sync.registries import Registry, build_registries
from dockyard.ext.sync.sync_stats import SyncStats
from dockyard.storage.store import Store
from dockyard.web.app_keys import STORE
from dockyard.web.mirror import MIRROR

log = logging.getLogger("dockyard.sync")

__all__ = ["Mirror", "build_mirror", "install_sync"]


class Mirror:
    """Everything mirroring needs, built from one config."""

    def __init__(self, store: Store, registries: list[Registry]) -> None:
        self.registries = registries
        self.stats = SyncStats()
        self.flights = Flights(self.stats)
        self.on_demand = OnDemand(registries, self.flights, self.stats)
        self.periodic = PeriodicSync(store, registries, self.flights, self.stats)

    async def close(self) -> None:
        await self.on_demand.close()
        await self.flights.cancel_all()
        for registry in self.registries:
            for upstream in registry.upstreams:
                await upstream.close()


def build_mirror(config: Config, store: Store) -> Mirror | None:
    registries = build_registries(config)
    return Mirror(store, registries) if registries else None


SYNC: web.AppKey[Mirror] = web.AppKey("sync", Mirror)


def install_sync(app: web.Application, config: Config) -> None:
    """Hook the mirror into the read handlers and start periodic sync beside serving."""
    mirror = build_mirror(config, app[STORE])
    if mirror is None:
        return
    app[SYNC] = mirror
    if mirror.on_demand.registries:
        app[MIRROR] = mirror.on_demand
    from dockyard.ext.metrics import METRICS

    if METRICS in app:
        app[METRICS].sources.append(mirror.stats.metrics)
    app.cleanup_ctx.append(_background)


async def _background(app: web.Application) -> AsyncIterator[None]:
    mirror = app[SYNC]
    # Periodic passes in the worker holding the background lease only.
    task = asyncio.create_task(app[STORE].lease.run(mirror.periodic.run_forever), name="sync")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await mirror.close()
