"""Config hot reload: on SIGHUP, and when the config file changes on disk.

The new file is read and validated first; one that does not load is logged and the
running config stays. Then what can change live is applied: the log level and output,
each root's dedupe, GC, ``gcDelay``, ``gcInterval`` and ``retention``, the background
scrub, and whatever registered a hook (auth, access control, rate limits). Nothing here
touches the listener, so no connection is dropped. Settings that only a restart can
change (the listener, the storage roots, the metrics route) are named in a warning.

Hooks: ``app[RELOAD_HOOKS].append(hook)``, where ``hook(old, new)`` gets the running and
the new :class:`Config` and may be a coroutine function. A hook that raises is logged and
the others still run. The file is polled (its inode, size and mtime, every second) rather
than watched with inotify: that needs no dependency and sees a ConfigMap's symlink swap too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric

from dockyard.app.logs import set_level, setup_logging
from dockyard.app.preflight import problems
from dockyard.app.storage_roots import root_settings
from dockyard.config import Config, ConfigError, load_config
from dockyard.storage.live_settings import adopt_again, apply_settings
from dockyard.storage.store import Store

log = logging.getLogger("dockyard.reload")

ReloadHook = Callable[[Config, Config], Awaitable[None] | None]
RELOAD_HOOKS: web.AppKey[list[ReloadHook]] = web.AppKey("reload_hooks", list)
#: Applied to every config read (the command line's --address, --port, --root).
Overrides = Callable[[Config], Config]

#: Keys whose change needs a restart, beyond the storage roots (found by the store).
RESTART_KEYS = (
    "http.address",
    "http.port",
    "http.workers",
    "extensions.metrics",
    "extensions.search",
    "extensions.ui",
)
#: Keys of a root (and each ``subPaths`` entry) whose change needs a restart.
_SHARED = ("cacheDriver", "remoteCache")
#: Seconds between looks at the config file; a change must hold for one more look.
POLL_SECONDS = 1.0


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: dotted keys, for naming what changed."""
    if not isinstance(doc, dict) or not doc:
        return {prefix.rstrip("."): doc}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def changed_keys(old: Config, new: Config) -> list[str]:
    before = flatten(old.model_dump(by_alias=True, mode="json"))
    after = flatten(new.model_dump(by_alias=True, mode="json"))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Reloader:
    """Holds the running config and swaps in a new one."""

    def __init__(
        self,
        app: web.Application,
        store: Store,
        config: Config,
        path: Path | None,
        overrides: Overrides | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.config = config
        self.path = path
        self.overrides: Overrides = overrides or (lambda c: c)
        self.succeeded = 0
        self.failed = 0
        self._lock = asyncio.Lock()
        self._stamp = _file_stamp(path) if path is not None else None
        self._background: set[asyncio.Task[Any]] = set()

    async def reload(self, why: str) -> bool:
        """Read the file again and apply it; False (old config kept) when it cannot load."""
        if self.path is None:
            log.warning("%s: no config file to reload (serving embedded defaults)", why)
            return False
        async with self._lock:
            self._stamp = _file_stamp(self.path)
            try:
                new, warnings = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                self.failed += 1
                log.error("%s: config not reloaded, the running one stays: %s", why, exc)
                return False
            for warning in warnings:
                log.warning(warning)
            new = self.overrides(new)
            # The checks serve makes at start: a log folder that is not there, an
            # unreadable htpasswd file, would otherwise break the running server.
            found = await asyncio.to_thread(problems, new)
            if found:
                self.failed += 1
                log.error(
                    "%s: config not reloaded, the running one stays: %s", why, "; ".join(found)
                )
                return False
            old, self.config = self.config, new
            changed = changed_keys(old, new)
            restart = await self._apply(old, new, changed)
            self.succeeded += 1
            log.info(
                "%s: config reloaded (%s)",
                why,
                ", ".join(changed) or "nothing changed",
                extra={"fields": {"changed": changed}},
            )
            if restart:
                log.warning(
                    "config changes need a restart to take effect: %s",
                    ", ".join(restart),
                    extra={"fields": {"restart_needed": restart}},
                )
            return True

    async def _apply(self, old: Config, new: Config, changed: list[str]) -> list[str]:
        restart = [k for k in RESTART_KEYS if any(c == k or c.startswith(k + ".") for c in changed)]
        # A root's coordination (its Redis) is built with the store: a restart switches it.
        restart += sorted(
            {c.partition(f".{k}")[0] + f".{k}" for c in changed for k in _SHARED if f".{k}" in c}
        )
        if new.log.output != old.log.output:
            setup_logging(new)
        set_level(new.log.level)
        default, subs = root_settings(new)
        needs, deduped = apply_settings(self.store, default, subs)
        restart += needs
        # Adoption walks the root: the worker running the background jobs does it (every
        # worker reloads the same file).
        for services in deduped if self.store.lease.held else []:
            task = asyncio.create_task(adopt_again(self.store, services), name="dedupe-adopt")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        hooks: list[ReloadHook] = self.app[RELOAD_HOOKS]
        for hook in list(hooks):
            try:
                result = hook(old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("a config reload hook failed: %r", hook)
        return restart

    async def watch(self) -> None:
        """Reload when the file's inode, size or mtime changes and then holds still."""
        if self.path is None:
            return
        while True:
            await asyncio.sleep(POLL_SECONDS)
            seen = _file_stamp(self.path)
            if seen is None or seen == self._stamp:
                continue
            await asyncio.sleep(POLL_SECONDS / 2)  # let a writer finish
            if _file_stamp(self.path) == seen:
                await self.reload(f"{self.path} changed")

    def on_sighup(self) -> None:
        task = asyncio.ensure_future(self.reload("SIGHUP"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def metrics(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dockyard_config_reloads", "Config reloads, by result", labels=["result"]
        )
        family.add_metric(["success"], self.succeeded)
        family.add_metric(["failure"], self.failed)
        yield family


RELOADER: web.AppKey[Reloader] = web.AppKey("reloader", Reloader)
