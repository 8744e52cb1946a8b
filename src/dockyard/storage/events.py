"""What storage reports as it works, for whoever counts it (metrics) or indexes it (search).

Storage must not import prometheus (nor anything above it), so it calls these hooks and
the default does nothing: a store without metrics pays one attribute look-up per event.
An observer subclasses :class:`StorageEvents` and is attached with ``Store.observe``.
"""

from __future__ import annotations

from pathlib import Path


class StorageEvents:
    """No-op hooks; override the ones you count. Called on the event loop's thread."""

    def lock_waited(self, seconds: float) -> None:
        """A repository lock was acquired after waiting ``seconds`` (0 when free)."""

    def gc_finished(
        self, root: Path, repo: str, seconds: float, blobs: int, manifests: int, freed: int
    ) -> None:
        """One GC pass over ``repo`` ended, removing that many blobs, manifests and bytes."""

    def quarantined(self, root: Path, repo: str, digest: str, reason: str) -> None:
        """Content that no longer matches its digest was moved out of the repository."""

    def repo_changed(self, root: Path, repo: str) -> None:
        """``repo``'s ``index.json`` was rewritten: a push, a tag move, a delete, or GC."""


class Fanout(StorageEvents):
    """Several observers of one root (metrics and the search index), called in order."""

    def __init__(self, *observers: StorageEvents) -> None:
        self.observers = observers

    def lock_waited(self, seconds: float) -> None:
        for o in self.observers:
            o.lock_waited(seconds)

    def gc_finished(
        self, root: Path, repo: str, seconds: float, blobs: int, manifests: int, freed: int
    ) -> None:
        for o in self.observers:
            o.gc_finished(root, repo, seconds, blobs, manifests, freed)

    def quarantined(self, root: Path, repo: str, digest: str, reason: str) -> None:
        for o in self.observers:
            o.quarantined(root, repo, digest, reason)

    def repo_changed(self, root: Path, repo: str) -> None:
        for o in self.observers:
            o.repo_changed(root, repo)


#: The shared do-nothing observer.
NO_EVENTS = StorageEvents()
