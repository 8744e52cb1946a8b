"""Builds the aiohttp application from a config and serves it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from dockyard.api.common import STORE
from dockyard.api.errors import errors_middleware
from dockyard.api.routes import add_routes
from dockyard.config import Config
from dockyard.storage.gc import stop_walker
from dockyard.storage.root import RootSettings
from dockyard.storage.store import Store

log = logging.getLogger("dockyard")


def build_store(config: Config) -> Store:
    """The store a config describes: the default root and one root per ``subPaths`` entry."""
    storage = config.storage

    def settings(root: Path, dedupe: bool, gc: bool, gc_delay: float) -> RootSettings:
        return RootSettings(
            root.absolute(),
            dedupe=dedupe,
            gc=gc,
            gc_delay=gc_delay,
            gc_interval=storage.gc_interval,
            retention_delay=storage.retention.delay,
        )

    default = settings(storage.root_directory, storage.dedupe, storage.gc, storage.gc_delay)
    subs = {
        prefix: settings(sub.root_directory, sub.dedupe, sub.gc, sub.gc_delay)
        for prefix, sub in storage.sub_paths.items()
    }
    return Store(default, subs)


def build_app(config: Config) -> web.Application:
    # client_max_size only bounds request.read(); blob bodies are streamed, never read whole.
    app = web.Application(middlewares=[errors_middleware], client_max_size=8 * 1024 * 1024)
    app[STORE] = build_store(config)
    add_routes(app)
    app.cleanup_ctx.append(_background)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Work that runs beside serving, never before it: periodic GC, dedupe of adopted roots."""
    store = app[STORE]
    tasks = [asyncio.create_task(store.adopt_all(), name="dedupe-adopt")]
    if any(s.collector is not None for s in store.roots()):
        tasks.append(asyncio.create_task(store.collect_forever(), name="gc"))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for services in store.roots():
        if services.collector is not None:
            await services.collector.drain()
    stop_walker()


def setup_logging(config: Config) -> None:
    level = {"trace": "DEBUG", "warn": "WARNING", "fatal": "CRITICAL", "panic": "CRITICAL"}
    name = level.get(config.log.level, config.log.level.upper())
    handler: logging.Handler = (
        logging.FileHandler(config.log.output) if config.log.output else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=name, handlers=[handler], force=True)
    if name != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def _serve(config: Config) -> None:
    app = build_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=log.getChild("access"))
    await runner.setup()
    site = web.TCPSite(runner, config.http.address, config.http.port, backlog=1024)
    await site.start()
    root = Path(config.storage.root_directory).absolute()
    log.info("dockyard serving %s on http://%s:%s", root, config.http.address, config.http.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("dockyard stopping")
    await runner.cleanup()


def serve(config: Config) -> None:
    """Serve until SIGINT or SIGTERM. Plain asyncio loop: uvloop would disable sendfile."""
    setup_logging(config)
    asyncio.run(_serve(config))
