"""Health probes as zot serves them: ``/livez``, ``/readyz``, ``/startupz``.

- ``/livez``: the process answers HTTP. A failure means restart it.
- ``/startupz``: start-up work is done (the repository catalog has been walked).
- ``/readyz``: started, not draining after SIGTERM, and every storage root is reachable
  and writable, tested by writing and removing a small file under ``ROOT/_dockyard/``.
  With a ``cacheDriver``, its Redis must also answer a PING (replicas coordinate through
  it). A failure means send no traffic here for now, not restart: a full disk recovers
  once space is freed, and the replica reconnects on its own when Redis is back.

Each answers JSON: 200 ``{"status": ...}``, or 503 with what is wrong.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from dockyard.storage.probe import probe_writable
from dockyard.storage.root import StorageRoot
from dockyard.web.app_keys import STORE

#: A root that takes longer than this to write a few bytes is not ready (hung NFS, dying disk).
PROBE_TIMEOUT = 5.0


@dataclass
class Health:
    """Lifecycle flags the probes report."""

    started: bool = False
    draining: bool = False


HEALTH: web.AppKey[Health] = web.AppKey("health", Health)
_NO_CACHE = {"Cache-Control": "no-store"}


def _answer(code: int, status: str, **more: object) -> web.Response:
    return web.json_response({"status": status, **more}, status=code, headers=_NO_CACHE)


async def livez(request: web.Request) -> web.Response:
    return _answer(200, "ok")


async def startupz(request: web.Request) -> web.Response:
    if request.app[HEALTH].started:
        return _answer(200, "started")
    return _answer(503, "starting")


async def _probe(root: StorageRoot) -> str | None:
    """None when the root took a write (and its bucket, if any), else why not."""
    try:
        await asyncio.wait_for(
            asyncio.to_thread(probe_writable, root.path, root.backend), PROBE_TIMEOUT
        )
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


async def readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    if not health.started:
        return _answer(503, "starting")
    if health.draining:
        return _answer(503, "draining")
    roots = [services.root for services in request.app[STORE].roots()]
    verdicts = await asyncio.gather(*(_probe(root) for root in roots))
    problems = {str(r.path): why for r, why in zip(roots, verdicts, strict=True) if why is not None}
    shared = [root.coordination for root in request.app[STORE].shared()]
    answers = await asyncio.gather(*(c.check() for c in shared if c is not None))
    caches = sorted({why for why in answers if why is not None})
    if problems or caches:
        more: dict[str, object] = {"roots": problems} if problems else {}
        if caches:
            more["cache"] = caches
        return _answer(503, "not ready", **more)
    return _answer(200, "ready")


def install_health(app: web.Application) -> Health:
    """The lifecycle flags the probes report (their routes are in ``api.routes``)."""
    health = Health()
    app[HEALTH] = health
    return health
