"""What the auth middleware leaves on a request for the handlers to consult.

Without any auth configured the middleware is not installed, nothing is set, and
:func:`read_filter` answers None: handlers then filter nothing, at no cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from aiohttp import web

from dockyard.auth.identity import Identity

#: The caller's :class:`Identity`.
IDENTITY = "dockyard.identity"
#: ``repo -> bool``: whether the caller may read a repository.
READ_FILTER = "dockyard.read_filter"
#: ``(action, repo) -> bool``: what the caller may do (the search API's ``IsDeletable``).
PERMITS = "dockyard.permits"
#: For the audit log: the user name a failed login tried.
ATTEMPTED_USER = "dockyard.attempted_user"

ReadFilter = Callable[[str], bool]
Permits = Callable[[str, str], bool]


def read_filter(request: web.Request) -> ReadFilter | None:
    """Whether the caller may read a repository; None when access is not controlled.

    Used wherever a response could reveal another repository's content: the catalog,
    a cross-repository mount, and dedupe's link-in of a blob held elsewhere.
    """
    return cast(ReadFilter | None, request.get(READ_FILTER))


def identity(request: web.Request) -> Identity | None:
    return cast(Identity | None, request.get(IDENTITY))


def permits(request: web.Request) -> Permits | None:
    """``(action, repo) -> allowed`` for the caller; None when access is not controlled."""
    return cast(Permits | None, request.get(PERMITS))
