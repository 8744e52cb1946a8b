"""A blob GET answered straight from the bucket, decided by the bucket's own answers.

The full path of a blob GET on object storage (``RepoBlobs.checked``, then the stream)
asks the bucket three times in a row: boto3 HEADs the repository's reference, then the
shared copy it names, in a thread, then a URL is signed, in another, and the presigned
GET is sent. The two boto3 calls and the thread hops were most of a 1 MiB pull's CPU.
Here the server sends, at once and from the loop's own HTTP client, the GET of the bytes
and (with dedupe) a HEAD of the reference, from presigned URLs kept for half their life,
and serves the GET's body only when both answers prove what the full path would:

- **The name is there.** The reference answers 200 and names the digest's shared copy
  (the key is derived from the digest, so it is known before the answer comes). A
  reference deleted (by DELETE, GC, another replica or by hand), or one that names
  anything else, fails this: no cache is trusted, the object is asked every time.
- **The bytes are good.** The GET answers 200 for a whole object that is no reference,
  and its stat (ETag, size, ``Last-Modified``, through ``s3stat`` exactly as boto3's
  HEAD gives them) matches the digest's verified stamp: the check the full path makes
  on its HEAD, here made on the very answer whose bytes go out.

Anything else (a 404, a stamp that does not match, a 403 from an expired signature, an
unreachable store) drops the answers and the URLs, and the full path gives the exact
answer: 404 with the spec's code, a hash and quarantine, 503 with ``Retry-After``.
Without dedupe the blob's own key holds the bytes, and the GET alone decides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.backend import UrlMethod
from dockyard.storage.paths import shared_blob_path
from dockyard.storage.root import StorageRoot

#: How long a URL the server reads from is valid. It never leaves the server (it is sent
#: to the store only, never to a client or a log), and is kept for half of it.
URL_EXPIRY = 10 * 60
#: A kept URL is reused this long after it was signed: signing two URLs is a thread hop
#: and 0.3 ms of CPU, as much as the rest of a direct GET's own work, and each use still
#: has half the URL's life left (a 403 from credentials rotated meanwhile: the full path).
URL_REUSE = URL_EXPIRY / 2
#: URLs kept at most (two per blob with dedupe); past it the cache starts again.
_KEPT = 8192


@dataclass(frozen=True)
class DirectRead:
    """The requests that may answer one blob GET by themselves."""

    #: The object holding the bytes, and its presigned GET.
    path: Path
    url: str
    #: The repository's reference to it and its presigned HEAD; None without dedupe,
    #: where ``path`` is the repository's own key.
    reference: Path | None
    reference_url: str | None


class DirectReads:
    """Direct reads of one root on object storage: their URLs, and the check of their
    answers."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self._urls: dict[tuple[Path, UrlMethod], tuple[str, float]] = {}

    async def plan(self, repo: str, digest: Digest) -> DirectRead | None:
        """What to ask for ``repo``'s blob ``digest``; None on a root whose files are
        local (sendfile serves them) or a backend without URLs."""
        root = self.root
        if not root.remote:
            return None
        name = root.files.path(repo, digest)
        if not root.files.by_reference:
            (url,) = await self._urls_for([(name, "GET")])
            return None if url is None else DirectRead(name, url, None, None)
        path = shared_blob_path(root.path, digest)
        url, reference_url = await self._urls_for([(path, "GET"), (name, "HEAD")])
        if url is None or reference_url is None:
            return None
        return DirectRead(path, url, name, reference_url)

    async def accept(
        self,
        read: DirectRead,
        digest: Digest,
        got: Mapping[str, str],
        named: Mapping[str, str] | None,
    ) -> int | None:
        """The blob's size when the headers of the GET's 200 (``got``) and of the
        reference's 200 (``named``, with dedupe) prove it there and good; else None, and
        the caller takes the full path."""
        backend = self.root.backend
        answer = backend.url_answer(got)
        if answer is None or answer[1] is not None:
            return None  # not a whole object of bytes: a reference, an upload's state
        st = answer[0]
        if read.reference is not None:
            reference = None if named is None else backend.url_answer(named)
            if reference is None or reference[1] != read.path:
                return None  # gone, a full copy, or naming something else
        if not await self.root.stamps.matches_soon(st, str(digest)):
            return None  # never hashed, or changed since: the full path hashes it
        return st.st_size

    def drop(self, read: DirectRead) -> None:
        """Forget ``read``'s URLs: the next GET of the blob signs afresh (an answer that
        failed may have been a refused signature: rotated credentials)."""
        self._urls.pop((read.path, "GET"), None)
        if read.reference is not None:
            self._urls.pop((read.reference, "HEAD"), None)

    async def _urls_for(self, wanted: list[tuple[Path, UrlMethod]]) -> list[str | None]:
        """The URLs of ``wanted``: those kept and still fresh, the others signed together
        in one thread hop (signing is local, but credentials from a role may be refreshed
        over the network)."""
        now = time.monotonic()
        found: list[str | None] = []
        missing: list[tuple[Path, UrlMethod]] = []
        for want in wanted:
            kept = self._urls.get(want)
            fresh = kept is not None and now - kept[1] < URL_REUSE
            found.append(kept[0] if kept is not None and fresh else None)
            if not fresh:
                missing.append(want)
        if not missing:
            return found
        signed = iter(await asyncio.to_thread(self._sign, missing))
        if len(self._urls) + len(missing) > _KEPT:
            self._urls.clear()
        for at, want in enumerate(wanted):
            if found[at] is None:
                url = found[at] = next(signed)
                if url is not None:
                    self._urls[want] = (url, now)
        return found

    def _sign(self, wanted: list[tuple[Path, UrlMethod]]) -> list[str | None]:
        backend = self.root.backend
        return [backend.object_url(path, URL_EXPIRY, method) for path, method in wanted]
