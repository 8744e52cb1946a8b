"""The authenticated caller of one request: a user, its groups, and how it proved itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.util.globs import glob_match

#: How a caller authenticated. "anonymous" means it presented no credentials at all.
Method = str


@dataclass(frozen=True)
class Identity:
    """Who is asking. ``user`` is None for an anonymous request."""

    user: str | None
    method: Method = "anonymous"
    groups: frozenset[str] = frozenset()
    #: An API key's repository globs: the key works only there (None: everywhere).
    scopes: tuple[str, ...] | None = None
    #: A bearer token's grants, ``(type, name) -> actions``; None for other methods.
    grants: Mapping[tuple[str, str], frozenset[str]] | None = field(default=None, hash=False)

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def in_scope(self, repo: str) -> bool:
        """Whether an API key limited to some repositories covers ``repo``."""
        return self.scopes is None or any(glob_match(p, repo) for p in self.scopes)


ANONYMOUS = Identity(user=None)
