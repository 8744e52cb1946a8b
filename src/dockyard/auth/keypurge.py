"""Deletes API keys that can no longer be used, in a pass every ``apikeyPurgeInterval``.

Expired keys are refused the moment they expire (:meth:`KeyStore.authenticate`);
this only clears them out of the database. The keys of a user the htpasswd file no
longer names are refused at once too (:meth:`Authenticator.still_issued`); they are
deleted once the user has been missing on two passes in a row, so that a user created
again later under the same name does not inherit them, while a file caught half-written
by an editor for a moment does not cost everyone their keys. The database work runs in
a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from dockyard.auth.apikey_store import KeyStore
from dockyard.auth.authenticator import Authenticator
from dockyard.storage.coordination import BackgroundLease

log = logging.getLogger("dockyard.auth")


class KeyPurger:
    """The periodic purge of one key store, against the authenticator of the moment."""

    def __init__(self, keys: KeyStore, current: Callable[[], Authenticator], every: float) -> None:
        self.keys = keys
        self.current = current
        self.every = every
        #: With worker processes: purge only in the one holding the background lease.
        self.lease: BackgroundLease | None = None
        self._missing_before: set[str] = set()

    async def purge_once(self) -> int:
        """One pass; the number of keys deleted."""
        htpasswd = self.current().htpasswd
        gone: set[str] = set()
        if htpasswd is not None:  # without the file, nothing says who is gone
            htpasswd.reload()
            known = set(htpasswd.users())
            holders = await asyncio.to_thread(self.keys.users, "htpasswd")
            missing = holders - known
            gone = missing & self._missing_before
            self._missing_before = missing
        deleted = await asyncio.to_thread(self.keys.purge, time.time(), gone, "htpasswd")
        if deleted:
            log.info(
                "purged %d API keys: expired, or of %d users gone from htpasswd",
                deleted,
                len(gone),
            )
        return deleted

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx``: passes run while the app serves."""
        lease = self.lease
        job = self._forever() if lease is None else lease.run(self._forever)
        task = asyncio.create_task(job, name="apikey-purge")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.purge_once()
            except Exception:  # a locked or damaged database: try again next time
                log.exception("API key purge failed")
