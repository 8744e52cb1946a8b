"""What the auth middleware leaves on a request for the handlers to consult.

Without any auth configured the middleware is not installed, nothing is set, and
:func:`read_filter` answers None: handlers then filter nothing, at no cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from aiohttp import web

from dockyard.auth.identity import Identity
from dockyard.storage.manifests import MayMoveTag

#: The caller's :class:`Identity`.
IDENTITY = "dockyard.identity"
#: ``repo -> bool``: whether the caller may read a repository.
READ_FILTER = "dockyard.read_filter"
#: ``repo -> bool``: whether the caller may ``create`` (push) in a repository.
CREATE_FILTER = "dockyard.create_filter"
#: ``(action, repo) -> bool``: what the caller may do (the search API's ``IsDeletable``).
PERMITS = "dockyard.permits"
#: For the audit log: the user name a failed login tried, when it names a real user.
ATTEMPTED_USER = "dockyard.attempted_user"
#: For the audit log: a short keyed hash of any other name tried (see auth.redact).
ATTEMPTED_USER_HASH = "dockyard.attempted_user_hash"
#: For a manifest PUT setting tags: ``tag -> bool``, whether the caller may move one that
#: exists (``update``). Storage asks it under the repository lock, at publish time.
MAY_MOVE_TAG = "dockyard.may_move_tag"

ReadFilter = Callable[[str], bool]
Permits = Callable[[str, str], bool]


def read_filter(request: web.Request) -> ReadFilter | None:
    """Whether the caller may read a repository; None when access is not controlled.

    Used wherever a response could reveal another repository's content: the catalog,
    a cross-repository mount, and dedupe's link-in of a blob held elsewhere.
    """
    return cast(ReadFilter | None, request.get(READ_FILTER))


def may_create(request: web.Request, repo: str) -> bool:
    """Whether the caller may push to ``repo``; True when access is not controlled.

    Decides whether a HEAD may link in a blob held elsewhere (dedupe): that shortcut is
    for pushers, and for anyone else the HEAD must stay a read that changes nothing.
    """
    allowed = cast(ReadFilter | None, request.get(CREATE_FILTER))
    return allowed is None or allowed(repo)


def identity(request: web.Request) -> Identity | None:
    return cast(Identity | None, request.get(IDENTITY))


def may_move_tag(request: web.Request) -> MayMoveTag | None:
    """Whether the caller may move an existing tag; None when access is not controlled."""
    return cast(MayMoveTag | None, request.get(MAY_MOVE_TAG))


def permits(request: web.Request) -> Permits | None:
    """``(action, repo) -> allowed`` for the caller; None when access is not controlled."""
    return cast(Permits | None, request.get(PERMITS))
