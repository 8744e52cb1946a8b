"""The one seam between the read handlers and a mirror (``extensions.sync``).

A manifest or blob GET/HEAD that would answer MANIFEST_UNKNOWN, BLOB_UNKNOWN or
NAME_UNKNOWN first asks the installed :class:`MissHook` whether an upstream has it. The
API only knows this protocol; the mirror lives in ``dockyard.ext.sync``. Without a mirror
configured nothing is installed and the handlers behave as before.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from dockyard.oci.digest import Digest
from dockyard.storage.store import RootServices


class Stored:
    """What :meth:`MissHook.blob` answers when it stored the blob rather than streamed it
    (a root on object storage): the handler serves it as any stored blob."""


#: The one :class:`Stored` answer.
STORED = Stored()


class MissHook(Protocol):
    async def refresh(self, svc: RootServices, name: str, reference: str) -> None:
        """Bring a local tag up to date with its upstream when it is due for a check."""

    async def manifest(self, svc: RootServices, name: str, reference: str) -> bool:
        """Fetch a missing manifest into the store; True when it is there now."""

    async def blob(
        self, request: web.Request, svc: RootServices, name: str, digest: Digest
    ) -> web.StreamResponse | Stored | None:
        """Answer a missing blob from an upstream (streaming it while it is stored), or
        :data:`STORED` once it is stored; None when no upstream has it."""


MIRROR: web.AppKey[MissHook] = web.AppKey("mirror", MissHook)


def miss_hook(request: web.Request) -> MissHook | None:
    return request.app.get(MIRROR)
