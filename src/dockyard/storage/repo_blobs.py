"""Blobs of a repository: look-ups, uploads through to publication, deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.errors import BlobUnknown, DigestInvalid, StorageFull, is_disk_full
from dockyard.storage.integrity import BlobVerifier
from dockyard.storage.paths import publish_key
from dockyard.storage.root import StorageRoot
from dockyard.storage.upload_session import ANYONE, Caller, Owner, Session

#: Which repositories a blob may be taken from for another (None: any).
SourceFilter = Callable[[str], bool] | None


class RepoBlobs:
    """Blob operations of one storage root, addressed by repository name."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self.verifier = BlobVerifier(root)

    def stat(
        self, repo: str, digest: Digest, link: bool = False, source_ok: SourceFilter = None
    ) -> tuple[Path, int]:
        """The blob's file and size; NameUnknown or BlobUnknown when it is not there.

        With dedupe and ``link``, a blob this repository lacks but another repository of
        the root holds is linked in first, so a client checking before a push skips the
        upload (zot's check-blob behaviour). ``source_ok`` limits the repositories it may
        come from (those the caller may read), so a HEAD never reveals another's blob.
        """
        files = self.root.files
        st = files.stat(repo, digest)
        if st is None and link and files.dedupe and self._link_in(repo, digest, source_ok):
            st = files.stat(repo, digest)
        if st is None:
            self.root.require(repo)  # NameUnknown for a missing repository
            raise BlobUnknown(f"blob {digest} is not in {repo!r}", {"digest": str(digest)})
        return files.path(repo, digest), st.st_size

    async def checked(
        self, repo: str, digest: Digest, link: bool = False, source_ok: SourceFilter = None
    ) -> tuple[Path, int]:
        """As :meth:`stat`, for a blob about to be served: its bytes must match its digest.

        A file that does not is quarantined and answered as BlobUnknown (see ``integrity``).
        """
        path, _ = await self.root.off_loop(self.stat, repo, digest, link, source_ok)
        return path, await self.verifier.ensure_good(repo, digest, path)

    def _link_in(self, repo: str, digest: Digest, source_ok: SourceFilter = None) -> bool:
        if not self.root.dedupe.knows(digest):
            return False
        if not self.root.files.link_in(repo, digest, source_ok):
            return False
        self.root.ensure_repo(repo)
        return True

    async def delete(self, repo: str, digest: Digest) -> None:
        await self.root.off_loop(self.root.require, repo)
        async with self.root.locks.hold(repo) as held:
            await held.fence()
            if not await asyncio.to_thread(self.root.files.delete, repo, digest):
                raise BlobUnknown(f"blob {digest} is not in {repo!r}", {"digest": str(digest)})

    def start_upload(self, repo: str, owner: Owner = None) -> Session:
        """A new session of ``owner``; the repository exists from here on, so GC finds
        abandoned ones."""
        try:
            self.root.ensure_repo(repo)
            return self.root.uploads.create(repo, owner)
        except OSError as exc:
            if is_disk_full(exc):
                raise StorageFull(f"cannot start an upload: {exc.strerror}") from exc
            raise  # not a full disk: a 500 that logs its cause

    async def open_upload(self, repo: str, owner: Owner = None) -> Session:
        """:meth:`start_upload` from the event loop (in a thread on object storage)."""
        return await self.root.off_loop(self.start_upload, repo, owner)

    async def session(self, repo: str, session_id: str, caller: Caller = ANYONE) -> Session:
        """``caller``'s session; BlobUploadUnknown when it is absent or someone else's."""
        return await self.root.uploads.get(repo, session_id, caller)

    async def append(
        self,
        session: Session,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
        *,
        durable: bool = True,
    ) -> int:
        try:
            return await self.root.uploads.append(session, body, start, length, durable=durable)
        except StorageFull:
            # A full disk: free what the session holds now rather than keep a partial
            # upload the client will not resume; it starts over once there is room.
            await self.root.off_loop(self.root.uploads.forget, session)
            raise StorageFull(
                "no space left on the registry's disk; the upload was discarded and nothing "
                "was published",
                {"session": session.id},
            ) from None

    async def finish(self, session: Session, digest: Digest) -> None:
        """Verify the streamed hash and publish the file under its digest.

        A wrong digest discards the session: its bytes can never become that blob.

        Publishes of one digest take turns (a lock striped by digest, across worker
        processes): when 20 clients push the same base layer at once, the first makes
        its file durable and moves it into place, and the others find it and link it,
        their own copies deleted without ever being fsynced.
        """
        uploads = self.root.uploads
        ok = await asyncio.to_thread(uploads.matches, session, digest)
        if not ok:
            await self.root.off_loop(uploads.forget, session)
            raise DigestInvalid(
                f"uploaded content does not match digest {digest}", {"digest": str(digest)}
            )
        try:
            await self.root.off_loop(self.root.ensure_repo, session.repo)
            async with self.root.locks.hold(publish_key(digest)):
                await asyncio.to_thread(self.root.files.publish, session.repo, digest, session.path)
        except OSError as exc:
            await self.root.off_loop(uploads.forget, session)
            if is_disk_full(exc):
                raise StorageFull(f"could not publish {digest}: {exc.strerror}") from exc
            raise  # not a full disk: a 500 that logs its cause
        await self.root.off_loop(uploads.forget, session)

    async def cancel(self, session: Session) -> None:
        async with session.lock:
            await self.root.off_loop(self.root.uploads.forget, session)

    async def link_any(self, repo: str, digest: Digest, source_ok: SourceFilter = None) -> bool:
        """Mount without ``from``: link a copy any repository of this root holds (of
        those ``source_ok`` accepts, when given)."""
        return await asyncio.to_thread(self._link_in, repo, digest, source_ok)

    async def link_from(self, repo: str, digest: Digest, source: str) -> bool:
        """Mount ``digest`` from ``source`` into ``repo`` (same root); False if it lacks it."""
        if await self.root.off_loop(self.root.files.stat, source, digest) is None:
            return False
        await self.root.off_loop(self.root.ensure_repo, repo)
        return await asyncio.to_thread(self.root.files.link_from, repo, digest, source)
