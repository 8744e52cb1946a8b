"""One version of the index, and orderings of it computed at most once.

The home page asks for every repository sorted by name, push time or size, a page at a
time: sorting 10,000 records per request would dominate its cost. A snapshot is never
changed, so an ordering computed from it stays right for as long as it is the current
one; the next change publishes a new snapshot with no orderings yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .records import RepoMeta

#: How each criterion orders repositories (no search text: every rank is equal).
_KEYS: dict[str, tuple[Callable[[RepoMeta], Any], bool]] = {
    "ALPHABETIC_ASC": (lambda r: r.name, False),
    "ALPHABETIC_DSC": (lambda r: r.name, True),
    "RELEVANCE": (lambda r: r.name, False),
    "DOWNLOADS": (lambda r: r.name, False),
    "STARS": (lambda r: r.name, False),
    "UPDATE_TIME": (lambda r: (-r.last_pushed, r.name), False),
    "SIZE": (lambda r: (-r.size, r.name), False),
}


class Snapshot:
    def __init__(self, repos: dict[str, RepoMeta]) -> None:
        self.repos = repos
        self._ordered: dict[str, list[RepoMeta]] = {}

    def ordered(self, criterion: str) -> list[RepoMeta] | None:
        """The repositories with tags in ``criterion``'s order; None for an unknown one.

        Called from worker threads: two may compute the same ordering at once, and either
        result is the same list, so the race is harmless.
        """
        found = self._ordered.get(criterion)
        if found is None:
            spec = _KEYS.get(criterion)
            if spec is None:
                return None
            key, reverse = spec
            found = sorted((r for r in self.repos.values() if r.tags), key=key, reverse=reverse)
            self._ordered[criterion] = found
        return found
