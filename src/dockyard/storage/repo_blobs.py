"""Blobs of a repository: look-ups, uploads through to publication, deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.direct_reads import DirectReads
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
        #: GETs answered from the bucket's own answers, before any look-up (object storage).
        self.direct = DirectReads(root)

    async def checked(
        self, repo: str, digest: Digest, link: bool = False, source_ok: SourceFilter = None
    ) -> tuple[Path, int]:
        """The blob's path and size, for a blob about to be served: its bytes must match
        its digest; NameUnknown or BlobUnknown when it is not there.

        With dedupe and ``link``, a blob this repository lacks but another repository of
        the root holds is linked in first, so a client checking before a push skips the
        upload (zot's check-blob behaviour). ``source_ok`` limits the repositories it may
        come from (those the caller may read), so a HEAD never reveals another's blob.
        The path returned holds the bytes: on object storage with dedupe, the shared copy
        the repository's reference names (read without a second look-up of the
        reference). A file that does not match is quarantined and answered as
        BlobUnknown (see ``integrity``).
        """
        root, files = self.root, self.root.files
        found = await root.off_loop(files.resolve, repo, digest)
        if found is None and link and files.dedupe and await self.link_any(repo, digest, source_ok):
            found = await root.off_loop(files.resolve, repo, digest)
        if found is None:
            await root.off_loop(root.require, repo)  # NameUnknown for a missing repository
            raise _unknown(repo, digest)
        path, st = found
        return path, await self.verifier.ensure_good(repo, digest, path, st)

    def _link_in(self, repo: str, digest: Digest, source_ok: SourceFilter = None) -> bool:
        if not self.root.dedupe.knows(digest):
            return False
        if not self.root.files.link_in(repo, digest, source_ok):
            return False
        self.root.ensure_repo(repo)
        return True

    async def _sharing(self, digest: Digest, call: Callable[..., bool], *args: object) -> bool:
        """``call`` in a thread; under the digest's publish lock when it may write a
        reference object (object storage with dedupe), so GC never deletes the shared
        copy a new reference names (it deletes under that lock, after checking)."""
        if not self.root.files.by_reference:
            return bool(await asyncio.to_thread(call, *args))
        async with self.root.locks.hold(publish_key(digest)) as held:
            await held.fence()
            return bool(await asyncio.to_thread(call, *args))

    async def delete(self, repo: str, digest: Digest) -> None:
        await self.root.off_loop(self.root.require, repo)
        async with self.root.locks.hold(repo) as held:
            await held.fence()
            if not await asyncio.to_thread(self.root.files.delete, repo, digest):
                raise _unknown(repo, digest)

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
            async with self.root.locks.hold(publish_key(digest)) as held:
                await held.fence()
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
        """Mount without ``from`` (or a pusher's HEAD): link a copy any repository of this
        root holds (of those ``source_ok`` accepts, when given)."""
        return await self._sharing(digest, self._link_in, repo, digest, source_ok)

    async def link_from(self, repo: str, digest: Digest, source: str) -> bool:
        """Mount ``digest`` from ``source`` into ``repo`` (same root); False if it lacks it."""
        if await self.root.off_loop(self.root.files.stat, source, digest) is None:
            return False
        await self.root.off_loop(self.root.ensure_repo, repo)
        return await self._sharing(digest, self.root.files.link_from, repo, digest, source)


def _unknown(repo: str, digest: Digest) -> BlobUnknown:
    return BlobUnknown(f"blob {digest} is not in {repo!r}", {"digest": str(digest)})
