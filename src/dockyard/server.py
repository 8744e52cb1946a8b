"""Builds the aiohttp application from a config and serves it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from dockyard import ui
from dockyard.api.common import STORE
from dockyard.api.errors import errors_middleware
from dockyard.api.health import HEALTH
from dockyard.api.routes import add_routes
from dockyard.api.security import install_security, tls_context
from dockyard.config import Config
from dockyard.drain import drain
from dockyard.ext import search
from dockyard.logs import AccessLogger, access_log, setup_logging
from dockyard.memory import tune_allocator
from dockyard.operations import install_operations, operations_background
from dockyard.reload import RELOADER, Overrides
from dockyard.roots import root_settings
from dockyard.storage.gc import stop_walker
from dockyard.storage.store import Store

log = logging.getLogger("dockyard")


def build_store(config: Config) -> Store:
    """The store a config describes: the default root and one root per ``subPaths`` entry."""
    default, subs = root_settings(config)
    return Store(default, subs)


def build_app(
    config: Config, path: Path | None = None, overrides: Overrides | None = None
) -> web.Application:
    # client_max_size only bounds request.read(); blob bodies are streamed, never read whole.
    app = web.Application(middlewares=[errors_middleware], client_max_size=8 * 1024 * 1024)
    app[STORE] = build_store(config)
    install_operations(app, config, path, overrides)
    add_routes(app)
    install_security(app, config)
    if config.extensions.search_on:
        search.install(app)
    if config.extensions.ui_on:
        ui.install(app)
    app.cleanup_ctx.append(_background)
    app.cleanup_ctx.append(operations_background)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Work that runs beside serving, never before it: periodic GC, dedupe of adopted roots."""
    store = app[STORE]
    tasks = [
        asyncio.create_task(store.adopt_all(), name="dedupe-adopt"),
        # Always running: it idles while GC is off, which a config reload may change.
        asyncio.create_task(store.collect_forever(), name="gc"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for services in store.roots():
        if services.collector is not None:
            await services.collector.drain()
    stop_walker()


async def _serve(config: Config, path: Path | None, overrides: Overrides | None) -> None:
    app = build_app(config, path, overrides)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=access_log,
        access_log_class=AccessLogger,
        # Only once the drain below is over: how long cut requests get to unwind.
        shutdown_timeout=1.0,
    )
    await runner.setup()
    ssl_context = tls_context(app)
    site = web.TCPSite(
        runner, config.http.address, config.http.port, backlog=1024, ssl_context=ssl_context
    )
    await site.start()
    root = Path(config.storage.root_directory).absolute()
    scheme = "https" if ssl_context else "http"
    address = f"{scheme}://{config.http.address}:{config.http.port}"
    log.info("dockyard serving %s on %s", root, address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER].on_sighup)
    await stop.wait()
    # Stop accepting, let in-flight requests finish for up to the grace period, then cut
    # them (an upload cut mid-chunk rolls back to its last whole chunk and can resume).
    app[HEALTH].draining = True
    grace = app[RELOADER].config.http.shutdown_timeout
    log.info("dockyard stopping: no new connections; in-flight requests get up to %gs", grace)
    left = await drain(runner, grace)
    if left:
        log.warning("grace period of %gs over: cutting %d requests in flight", grace, left)
    await runner.cleanup()
    log.info("dockyard stopped")


def serve(config: Config, path: Path | None = None, overrides: Overrides | None = None) -> None:
    """Serve until SIGINT or SIGTERM; reload the config on SIGHUP or when ``path`` changes.

    Plain asyncio loop: uvloop would disable sendfile.
    """
    setup_logging(config)
    tune_allocator()
    asyncio.run(_serve(config, path, overrides))
