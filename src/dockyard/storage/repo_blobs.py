"""Blobs of a repository: look-ups, uploads through to publication, deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.direct_reads import DirectReads
from dockyard.storage.duplicate_uploads import DuplicateUploads
from dockyard.storage.errors import BlobUnknown, DigestInvalid, StorageFull, is_disk_full
from dockyard.storage.integrity import BlobVerifier
from dockyard.storage.paths import pin_path, publish_key
from dockyard.storage.root import StorageRoot
from dockyard.storage.upload_compare import compare_body, copy_prefix
from dockyard.storage.upload_session import ANYONE, Caller, Owner, Session

#: Which repositories a blob may be taken from for another (None: any).
SourceFilter = Callable[[str], bool] | None


class RepoBlobs:
    """Blob operations of one storage root, addressed by repository name."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self.verifier = BlobVerifier(root)
        self.duplicates = DuplicateUploads(root)
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

    async def upload_whole(
        self,
        session: Session,
        body: AsyncIterator[bytes],
        digest: Digest,
        start: int | None = None,
        length: int | None = None,
        declared: int | None = None,
    ) -> None:
        """The closing body of an upload whose digest is known (a PUT or POST with
        ``?digest=``): appended and published, or, when it duplicates bytes the root
        holds or is storing, hashed without being stored (see ``duplicate_uploads``).

        ``start``/``length`` come from Content-Range, ``declared`` from Content-Length.
        Nothing is acknowledged before the publish, which makes the bytes durable.
        """
        duplicates = self.duplicates
        if not duplicates.applies(session, start):
            await self.append(session, body, start, length, durable=False)
            await self.finish(session, digest)
            return
        plan = await duplicates.plan(session, digest, declared)
        if plan.pinned:
            await self._finish_pinned(session, body, digest, length)
            return
        try:
            await self.append(session, body, start, length, durable=False)
            await self.finish(session, digest)
        finally:
            plan.release()

    async def _finish_pinned(
        self, session: Session, body: AsyncIterator[bytes], digest: Digest, length: int | None
    ) -> None:
        """Check ``body`` against ``digest`` and, when it matches, publish the copy pinned
        beside the session; its session file stays empty throughout. A verified copy is
        compared with (see ``upload_compare``); any other is hashed against. A body that
        differs from the copy is stored and hashed from there on, like any upload's."""
        root = self.root
        pin = pin_path(session.path)
        try:
            size = await self._verified_size(pin, digest)
            if size is not None and length in (None, size):
                difference = await compare_body(root.uploads, body, pin, size)
                if difference is not None:  # decided by the hash, as any upload
                    await asyncio.to_thread(
                        copy_prefix, root.backend, session, pin, difference.offset
                    )
                    rest = None if length is None else length - difference.offset
                    await self.append(session, difference.rest, None, rest, durable=False)
                    await self.finish(session, digest)
                    return
            else:
                hexdigest = await root.uploads.digest_of(body, digest.algorithm, length)
                if hexdigest != digest.hex:
                    await root.off_loop(root.uploads.forget, session)
                    raise _mismatch(digest)
        except BaseException:
            root.backend.delete(pin)  # the session stays for a retry, as after append
            raise
        await self._publish(session, digest, root.files.publish_pinned, pin)

    async def _verified_size(self, pin: Path, digest: Digest) -> int | None:
        """The pinned copy's size when its verified stamp still matches (it was hashed
        and not rewritten since), so a body may be compared with it (``upload_compare``)."""
        st = await self.root.off_loop(self.root.backend.stat, pin)
        if st is None or not await self.root.stamps.matches_soon(st, str(digest)):
            return None
        return st.st_size

    async def finish(self, session: Session, digest: Digest) -> None:
        """Verify the streamed hash and publish the file under its digest.

        A wrong digest discards the session: its bytes can never become that blob.

        Publishes of one digest take turns (a lock striped by digest, across worker
        processes): when 20 clients push the same base layer at once, the first makes
        its file durable and moves it into place, and the others find it and link it,
        their own copies deleted without ever being fsynced (those whose digest was known
        before their bytes do not even write them: see :meth:`upload_whole`).
        """
        uploads = self.root.uploads
        ok = await asyncio.to_thread(uploads.matches, session, digest)
        if not ok:
            await self.root.off_loop(uploads.forget, session)
            raise _mismatch(digest)
        await self._publish(session, digest, self.root.files.publish, session.path)

    async def _publish(
        self,
        session: Session,
        digest: Digest,
        publish: Callable[[str, Digest, Path], None],
        src: Path,
    ) -> None:
        """``publish(repo, digest, src)`` under the digest's publish lock; the session is
        gone afterwards, whatever happened."""
        uploads = self.root.uploads
        try:
            await self.root.off_loop(self.root.ensure_repo, session.repo)
            async with self.root.locks.hold(publish_key(digest)) as held:
                await held.fence()
                await asyncio.to_thread(publish, session.repo, digest, src)
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


def _mismatch(digest: Digest) -> DigestInvalid:
    return DigestInvalid(
        f"uploaded content does not match digest {digest}", {"digest": str(digest)}
    )


def _unknown(repo: str, digest: Digest) -> BlobUnknown:
    return BlobUnknown(f"blob {digest} is not in {repo!r}", {"digest": str(digest)})
