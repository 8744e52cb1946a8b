"""Wires the operations features into an app: health probes, request ids and access
lines, metrics, background scrub, config reload. (The listener and signals are server.py's.)

Kept apart from server.py so the app is assembled in one place per concern: the spec's
routes, security, operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.health import HEALTH, install_health
from dockyard.api.routes import PROBE_ROUTES
from dockyard.app.logs import FLUSH_EVERY, add_request_id, flush_logs
from dockyard.app.reload import RELOAD_HOOKS, RELOADER, Overrides, Reloader
from dockyard.config import Config
from dockyard.config.extensions import DEFAULT_SCRUB_INTERVAL
from dockyard.ext import metrics
from dockyard.ext.scrub_schedule import ScrubRunner
from dockyard.web.app_keys import AFTER_RESPONSE, STORE
from dockyard.web.routing import add_routes

SCRUB: web.AppKey[ScrubRunner] = web.AppKey("scrub", ScrubRunner)


def _scrub_settings(config: Config) -> tuple[bool, float]:
    scrub = config.extensions.scrub
    return (
        config.extensions.scrub_on,
        scrub.interval if scrub is not None else DEFAULT_SCRUB_INTERVAL,
    )


def install_operations(
    app: web.Application,
    config: Config,
    path: Path | None = None,
    overrides: Overrides | None = None,
) -> None:
    """Add the probes, the request id, metrics (when on), scrub and reload to ``app``.

    Call after the store is set and before security, so the probes answer without a login.
    """
    store = app[STORE]
    app[AFTER_RESPONSE] = []
    app[RELOAD_HOOKS] = []
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(_close_when_draining)
    install_health(app)
    add_routes(app, PROBE_ROUTES)
    reloader = Reloader(app, store, config, path, overrides)
    app[RELOADER] = reloader
    runner = ScrubRunner(store, *_scrub_settings(config))
    app[SCRUB] = runner

    def rescrub(old: Config, new: Config) -> None:
        runner.configure(*_scrub_settings(new))

    app[RELOAD_HOOKS].append(rescrub)
    if config.extensions.metrics_on:
        assert config.extensions.metrics is not None
        m = metrics.install(app, config.extensions.metrics)
        m.sources.append(reloader.metrics)
        m.leader_sources.append(runner.metrics)  # the scrub runs in the lease holder


async def _close_when_draining(request: web.Request, response: web.StreamResponse) -> None:
    """After SIGTERM every response closes its connection: no next request on it."""
    if request.app[HEALTH].draining:
        response.force_close()


async def operations_background(app: web.Application) -> AsyncIterator[None]:
    """Start-up work (the catalog walk the probes wait for), scrub, the config watcher.

    Registered after the store's own background work, so it stops first: the scrub never
    outlives the worker process it hashes in.
    """
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_start_up(app), name="startup"),
        asyncio.create_task(app[STORE].lease.run(app[SCRUB].run_forever), name="scrub"),
        asyncio.create_task(app[RELOADER].watch(), name="config-watch"),
        asyncio.create_task(_flush_logs_forever(), name="log-flush"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _flush_logs_forever() -> None:
    """No buffered log line waits longer than ``FLUSH_EVERY``, even when traffic stops."""
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        flush_logs()


async def _start_up(app: web.Application) -> None:
    await app[STORE].wait_for_catalog()
    app[HEALTH].started = True
