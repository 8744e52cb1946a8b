"""Typed storage failures, one per distribution-spec error the API can answer with."""

from __future__ import annotations

import errno
import sys


class StorageError(Exception):
    """Base of every failure the API maps to a spec error; ``detail`` goes in the body."""

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NameUnknown(StorageError):
    """The repository does not exist."""


class BlobUnknown(StorageError):
    """The blob is not in this repository."""


class ManifestUnknown(StorageError):
    """No manifest under that tag or digest in this repository."""


class BlobUploadUnknown(StorageError):
    """No such upload session in this repository."""


class BlobUploadInvalid(StorageError):
    """The upload cannot go on as asked (bad Content-Range, body length mismatch)."""


class RangeNotSatisfiable(StorageError):
    """A chunk does not start where the session ends; the session stays usable."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class DigestInvalid(StorageError):
    """The content does not hash to the digest given, or the digest is malformed."""


class ManifestInvalid(StorageError):
    """The manifest is malformed or of an unsupported type."""


class ManifestBlobUnknown(StorageError):
    """The manifest references a blob or manifest this repository lacks."""


class StorageFull(StorageError):
    """The disk refused a write (no space or quota); nothing was published."""


class TagMoveDenied(StorageError):
    """A manifest PUT would move a tag, and the caller's policy refused that move.

    Storage knows nothing of users: the caller hands :meth:`RepoManifests.put` a
    yes/no for moving a tag, asked under the repository lock, and this is the no.
    """


def is_disk_full(exc: BaseException) -> bool:
    """Only these two errors mean a full disk (507); any other failed write is a 500.

    A read-only filesystem, a refused permission or an I/O error is not cured by freeing
    space, and calling it "storage full" sends an operator to the wrong problem.
    """
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


#: An object store's answers that say "not now" rather than "no": throttling, its own
#: failures, and the bucket gone (deleted, or not yet created after a redeploy).
_UNAVAILABLE_CODES = frozenset(
    {"NoSuchBucket", "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}
)


def is_unavailable(exc: BaseException) -> bool:
    """True when an object store did not answer (refused, reset, timed out, 5xx): a
    503 with Retry-After, not a 500, since the same request succeeds once it is back.

    Read without importing the S3 client: a process serving only local roots never has it.
    """
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return False
    if isinstance(exc, botocore.ConnectionError | botocore.HTTPClientError):
        return True
    if isinstance(exc, botocore.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status >= 500 or error.get("Code") in _UNAVAILABLE_CODES
    return False


class IndexUnreadable(StorageError):
    """A repository's ``index.json`` is damaged: refuse to read or write it, keep all."""


class Unavailable(StorageError):
    """A shared service the root needs (its Redis) does not answer: nothing was published,
    and the same request can be retried once it is back (503 with ``Retry-After``)."""


class LockLost(Unavailable):
    """The repository lock expired or was taken over before the publish step: the change
    was not published, because another holder may have written since (the fencing check)."""
