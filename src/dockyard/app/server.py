"""Builds the aiohttp application from a config and serves it."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from dockyard import ui
from dockyard.api.health import HEALTH
from dockyard.api.object_client import install as install_object_client
from dockyard.api.routes import SPEC_ROUTES
from dockyard.app.auth_stores import session_store
from dockyard.app.drain import drain
from dockyard.app.listen import close_all, open_listeners
from dockyard.app.logs import AccessLogger, access_log, setup_logging
from dockyard.app.memory import freeze_startup_objects, tune_allocator
from dockyard.app.middleware import middleware_chain
from dockyard.app.operations import install_operations, operations_background
from dockyard.app.preflight import StartupError, describe
from dockyard.app.refusals import Runner
from dockyard.app.reload import RELOADER, Overrides
from dockyard.app.security import install_security, tls_context
from dockyard.app.storage_roots import build_store
from dockyard.config import Config
from dockyard.ext import search
from dockyard.ext.sync import install_sync
from dockyard.storage.workers import stop_walker
from dockyard.util.plural import count
from dockyard.web.app_keys import STORE
from dockyard.web.routing import add_routes

log = logging.getLogger("dockyard")

#: Connections the kernel queues before they are accepted.
BACKLOG = 1024


def build_app(
    config: Config, path: Path | None = None, overrides: Overrides | None = None
) -> web.Application:
    """The registry's application, assembled in this order: the store; the operations
    (probes, request ids, reload, scrub, metrics); the spec's routes; security (TLS,
    audit, rate limits, auth, API keys); mirroring; search; the UI; the background work;
    and last the middleware chain (``app.middleware``). Start-up runs each
    ``cleanup_ctx`` in that order, and shutdown in reverse."""
    # client_max_size only bounds request.read(); blob bodies are streamed, never read whole.
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[STORE] = build_store(config)
    install_operations(app, config, path, overrides)
    add_routes(app, SPEC_ROUTES)
    install_object_client(app)
    security = install_security(app, config)
    install_sync(app, config)
    if config.extensions.search_on:
        search.install(app)
    if config.extensions.ui_on:
        guard = security.guard
        sessions = session_store(config, app[STORE]) if guard is not None else None
        ui.install(app, guard, sessions)
    app.cleanup_ctx.append(_background)
    app.cleanup_ctx.append(operations_background)
    shared = bool(app[STORE].shared())
    app.middlewares.extend(middleware_chain(security, config.extensions.metrics_on, shared))
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Work that runs beside serving, never before it: periodic GC, dedupe of adopted roots."""
    store = app[STORE]
    # In the worker holding the lease only (see storage.lease): one walk, not one a worker.
    tasks = [
        asyncio.create_task(store.lease.run(store.adopt_forever), name="dedupe-adopt"),
        # Always running: it idles while GC is off, which a config reload may change.
        asyncio.create_task(store.lease.run(store.collect_forever), name="gc"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for services in store.roots():
        if services.collector is not None:
            await services.collector.stop()
    stop_walker(cut_short=True)
    for root in store.shared():
        assert root.coordination is not None
        root.coordination.close()  # hands the lease over now, not one expiry later
    for services in store.roots():
        if services.root.coordination is None:
            # This machine's counter: the last process of the root removes its file.
            services.root.changes.close()


async def _serve(
    config: Config,
    path: Path | None,
    overrides: Overrides | None,
    sockets: list[socket.socket],
    ready: Callable[[], None] | None = None,
) -> None:
    try:
        app = build_app(config, path, overrides)
    except sqlite3.Error as exc:
        raise StartupError(f"cannot open a database under the storage root: {exc}") from exc
    except OSError as exc:
        raise StartupError(f"cannot start: {describe(exc)}") from exc
    runner = Runner(
        app,
        handle_signals=False,
        access_log=access_log,
        access_log_class=AccessLogger,
        # Only once the drain below is over: how long cut requests get to unwind.
        shutdown_timeout=1.0,
    )
    await runner.setup()
    ssl_context = tls_context(app)
    for sock in sockets:
        await web.SockSite(runner, sock, ssl_context=ssl_context, backlog=BACKLOG).start()
    root = Path(config.storage.root_directory).absolute()
    scheme = "https" if ssl_context else "http"
    address = f"{scheme}://{config.http.address}:{config.http.port}"
    log.info("dockyard serving %s on %s", root, address)
    freeze_startup_objects()
    if ready is not None:
        ready()
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
        log.warning("grace period of %gs over: cutting %s in flight", grace, count(left, "request"))
    await runner.cleanup()
    log.info("dockyard stopped")


def serve(
    config: Config,
    path: Path | None = None,
    overrides: Overrides | None = None,
    sockets: list[socket.socket] | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; reload the config on SIGHUP or when ``path`` changes.

    The listener opens first (``sockets``, from :func:`listen`, or opened here), then the
    log, then the storage: each failure a user can cause is a StartupError naming what to
    fix. Plain asyncio loop: uvloop would disable sendfile.
    """
    if sockets is None:
        sockets = listen(config)
    try:
        try:
            setup_logging(config)
        except OSError as exc:
            why = exc.strerror or exc
            raise StartupError(f"log.output: cannot open {config.log.output}: {why}") from exc
        tune_allocator()
        asyncio.run(_serve(config, path, overrides, sockets, ready))
    finally:
        close_all(sockets)


def listen(config: Config) -> list[socket.socket]:
    """The listening sockets for ``http.address`` and ``http.port``; StartupError if not."""
    return open_listeners(config.http.address, config.http.port, BACKLOG)
