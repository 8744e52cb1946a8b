"""S3 (or any S3-compatible object store) behind the backend interface.

Paths under the storage root map to keys under a prefix (zot's and distribution's
``rootdirectory``), so the bucket holds the same OCI layout as a local root:
``<prefix>/<repo>/index.json``, ``<prefix>/<repo>/blobs/sha256/<hex>``.

What a filesystem gives for free is built here from S3's own guarantees:

- **Whole objects.** A PUT or a completed copy appears whole or not at all, so
  ``write_atomic`` is one PUT and ``move_into_place`` a server-side copy, then a delete.
- **Appendable uploads** (``s3segments``): an upload is a state object listing readable
  segment objects, replaced by compare-and-swap; publishing composes the segments into
  the final object with server-side part copies, so no byte goes through dockyard again.
- **References instead of hard links.** With dedupe, a digest's bytes are stored once per
  root in the shared store (``<prefix>/_dockyard/blobs/<alg>/<hex>``), and each
  repository's ``blobs/<alg>/<hex>`` is an empty *reference object* whose metadata names
  that key (relative to the prefix, so the root can move). ``stat``, ``open_read`` and
  ``copy`` follow a reference; ``delete`` drops only the reference. ``link`` writes, first,
  an empty object ``.<hex>.refs/<the reference's key>`` beside the target, then the
  reference: every reference has its entry there, so whether a stored copy is still named
  is one listing (``referenced``), never a walk of the repositories, and never a cache
  (Redis holds no pointer: zot #4062). ``replace_with_link`` is ``link`` over a full copy
  (adoption, under the publish lock: see ``dedupe.adopt_shared``).

Each call is blocking, as the interface says: the server runs them in threads. The boto3
client is thread-safe; the backend holds only it and its names.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import ClientError

from dockyard.storage.backend import Entry, LinkUnsupported, Listed, UrlMethod
from dockyard.storage.paths import shared_blobs_dir
from dockyard.storage.s3_listings import abort_abandoned, walk_keys
from dockyard.storage.s3segments import (
    AppendState,
    ConcurrentAppend,
    S3Appender,
    Segment,
    SegmentReader,
    Segments,
)
from dockyard.storage.s3settings import S3Settings
from dockyard.storage.s3stat import APPENDABLE, REFERENCE, answer_of, identity, stat_of, stat_result

__all__ = ["MAX_COPY", "S3Backend", "S3Settings"]

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: S3's largest single copy (CopyObject); larger objects are copied in parts.
MAX_COPY = 5 * 1024**3
_MISSING = {"404", "NoSuchKey", "NotFound"}
#: Names (the class's ``list`` method shadows the builtin inside it).
_Names = list[str]


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING


def _precondition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}


class S3Backend:
    """Objects in one bucket under ``prefix``, named by paths under ``root``.

    Built from :class:`S3Settings`, it pickles as those settings (a client holds sockets),
    so GC's and scrub's worker processes get a backend of their own.
    """

    def __init__(self, settings: S3Settings, root: Path, client: S3Client | None = None) -> None:
        self.settings = settings
        self._client = client if client is not None else settings.client()
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.root = root
        #: Keys a reference may name: the root's shared store, nothing a repository holds.
        self._shared = self._folder_prefix(shared_blobs_dir(root))

    #: No hard links: names share a stored copy through reference objects.
    by_reference = True

    def __reduce__(self) -> tuple[Any, ...]:
        return (S3Backend, (self.settings, self.root))

    # --- names ---------------------------------------------------------------------------

    def key(self, path: Path) -> str:
        """The object key of a path under the root (ValueError for any other path)."""
        relative = path.relative_to(self.root).as_posix()
        if relative == ".":
            return self.prefix
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _folder_prefix(self, path: Path) -> str:
        key = self.key(path)
        return f"{key}/" if key else ""

    def _parts_prefix(self, key: str) -> str:
        folder, _, name = key.rpartition("/")
        return f"{folder}/.{name}.parts/" if folder else f".{name}.parts/"

    def _refs_prefix(self, key: str) -> str:
        """Where the entries of the references naming ``key`` are kept."""
        folder, _, name = key.rpartition("/")
        return f"{folder}/.{name}.refs/" if folder else f".{name}.refs/"

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _absolute(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    # --- raw object operations ------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _follow(
        self, key: str, head: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
        """(key holding the bytes, its HEAD, the reference's HEAD or None) for ``key``;
        None when absent, or a reference whose target is gone (a dangling reference is
        no blob: never served, and a new publish writes it again)."""
        head = head if head is not None else (self._head(key) if key else None)
        if head is None:
            return None
        target = head.get("Metadata", {}).get(REFERENCE)
        if target is None:
            return key, head, None
        target_key = self._absolute(target)
        target_head = self._head(target_key)
        if target_head is None:
            return None
        return target_key, target_head, head

    def get_body(self, key: str, start: int = 0) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start:
            args["Range"] = f"bytes={start}-"
        try:
            return self._client.get_object(**args)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            raise

    def get_bytes(self, key: str) -> bytes:
        body = self.get_body(key)
        try:
            return bytes(body.read())
        finally:
            body.close()

    def put_segment(self, upload_key: str, data: bytes) -> Segment:
        key = f"{self._parts_prefix(upload_key)}{uuid.uuid4().hex}"
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return Segment(key, len(data))

    def delete_key(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def _state_of(self, key: str, head: dict[str, Any] | None = None) -> AppendState | None:
        """The upload state stored at ``key``, or None when it is not an upload."""
        head = head if head is not None else self._head(key)
        if head is None or APPENDABLE not in head.get("Metadata", {}):
            return None
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=key, IfMatch=head["ETag"])
        except ClientError as exc:
            if _precondition_failed(exc) or _missing(exc):
                raise ConcurrentAppend(f"upload {key} changed while it was read") from exc
            raise
        return AppendState.load(obj["Body"].read(), head["ETag"])

    def put_state(self, key: str, state: AppendState) -> AppendState:
        """Replace the state object if nobody else did since it was read."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": state.dump(),
            "Metadata": {APPENDABLE: "1", "size": str(state.size)},
        }
        if state.etag is None:
            args["IfNoneMatch"] = "*"
        else:
            args["IfMatch"] = state.etag
        try:
            reply = self._client.put_object(**args)
        except ClientError as exc:
            if _precondition_failed(exc):
                raise ConcurrentAppend(f"upload {key} was changed by another writer") from exc
            raise
        return AppendState(state.segments, reply["ETag"])

    # --- the interface --------------------------------------------------------------------

    def stat(self, path: Path) -> os.stat_result | None:
        key = self.key(path)
        head = self._head(key) if key else None
        if head is not None:
            followed = self._follow(key, head)
            return None if followed is None else stat_of(followed[1], followed[2])
        listing = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._folder_prefix(path), MaxKeys=1
        )
        if listing.get("KeyCount", 0):
            return stat_result(0, datetime.fromtimestamp(0), "", folder=True)
        return None

    def exists(self, path: Path) -> bool:
        return self.stat(path) is not None

    def read_bytes(self, path: Path, limit: int | None = None) -> bytes:
        with self.open_read(path) as f:
            return f.read() if limit is None else f.read(limit + 1)

    def resolve(self, path: Path) -> tuple[Path, os.stat_result] | None:
        followed = self._follow(self.key(path))
        if followed is None:
            return None
        key, head, reference = followed
        held = path if reference is None else self.root / self._relative(key)
        return held, stat_of(head, reference)

    def referenced(self, path: Path) -> bool:
        reply = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._refs_prefix(self.key(path)), MaxKeys=1
        )
        return bool(reply.get("KeyCount", 0))

    def open_read(self, path: Path, offset: int = 0) -> BinaryIO:
        followed = self._follow(self.key(path))
        if followed is None:
            raise FileNotFoundError(path)
        key, head, _ = followed
        state = self._state_of(key, head)
        segments = state.segments if state else [Segment(key, int(head["ContentLength"]))]
        return io.BufferedReader(SegmentReader(self, segments, offset), 1024 * 1024)

    def local_file(self, path: Path) -> Path | None:
        return None  # nothing to sendfile: the API streams object_url

    def object_url(self, path: Path, expires: int, method: UrlMethod = "GET") -> str:
        """A presigned GET (or HEAD) of the path's object: signed locally with the
        client's credentials, no request made. Only for a whole object (a published blob),
        never an upload's state object, whose bytes are its segments."""
        return self._client.generate_presigned_url(
            "get_object" if method == "GET" else "head_object",
            Params={"Bucket": self.bucket, "Key": self.key(path)},
            ExpiresIn=expires,
        )

    def url_answer(self, headers: Mapping[str, str]) -> tuple[os.stat_result, Path | None] | None:
        """The stat (``s3stat.answer_of``), and the path a reference names: the key in
        its metadata, relative to the prefix, as :meth:`resolve` follows it."""
        answer = answer_of(headers)
        if answer is None:
            return None
        st, target = answer
        return st, None if target is None else self.root / target

    def write_atomic(self, path: Path, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.key(path), Body=data)

    def write(self, path: Path, data: bytes) -> None:
        self.write_atomic(path, data)

    def create(self, path: Path) -> None:
        """An empty appendable upload; FileExistsError when the key is taken."""
        try:
            self.put_state(self.key(path), AppendState())
        except ConcurrentAppend as exc:
            raise FileExistsError(path) from exc

    def open_append(self, path: Path) -> S3Appender:
        key = self.key(path)
        state = self._state_of(key)
        if state is None:
            raise FileNotFoundError(path)
        return S3Appender(self, key, state)

    def move_into_place(self, src: Path, dest: Path) -> None:
        self._copy_key(self.key(src), self.key(dest))
        self.delete(src)

    def link(self, src: Path, dest: Path, *, durable: bool = True) -> None:
        """Make ``dest`` a reference to the shared copy ``src`` is, or names.

        The entry beside the target goes first: a crash between the two writes leaves an
        entry without its reference (the copy kept a while longer), never a reference
        GC cannot see. Callers hold the digest's publish lock, which GC takes to delete.
        """
        followed = self._follow(self.key(src))
        if followed is None:
            raise FileNotFoundError(src)
        target = followed[0]
        if not target.startswith(self._shared):
            raise LinkUnsupported(0, "only the root's shared copy can be named", str(src))
        dest_key = self.key(dest)
        entry = self._refs_prefix(target) + self._relative(dest_key)
        self._client.put_object(Bucket=self.bucket, Key=entry, Body=b"")
        self._client.put_object(
            Bucket=self.bucket,
            Key=dest_key,
            Body=b"",
            Metadata={REFERENCE: self._relative(target)},
        )

    def replace_with_link(self, src: Path, dest: Path) -> None:
        """The reference is one PUT over the full copy: a GET already under way goes on
        reading the version it started with. The caller holds the digest's publish lock."""
        self.link(src, dest)

    def copy(self, src: Path, dest: Path) -> None:
        self._copy_key(self.key(src), self.key(dest))

    def move(self, src: Path, dest: Path) -> None:
        self.move_into_place(src, dest)

    def delete(self, path: Path) -> bool:
        """Remove an object; a reference goes before its entry (a crash between keeps the
        shared copy a while longer), and never takes the copy it names."""
        key = self.key(path)
        head = self._head(key)
        if head is None:
            return False
        target = head.get("Metadata", {}).get(REFERENCE)
        if target is not None:
            self.delete_key(key)
            self.delete_key(self._refs_prefix(self._absolute(target)) + self._relative(key))
            return True
        state = self._state_of(key, head)
        self.delete_key(key)
        for segment in state.segments if state else ():
            self.delete_key(segment.key)
        return True

    def make_dirs(self, path: Path) -> None:
        """Folders are key prefixes: there is nothing to make."""

    def list(self, folder: Path) -> list[Entry]:
        prefix = self._folder_prefix(folder)
        entries: list[Entry] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                entries.append(Entry(name, folder / name, True, 0))
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                entries.append(Entry(name, folder / name, False, identity(obj["ETag"])))
        return entries

    def sync_file(self, path: Path) -> None:
        """An upload's segments are whole objects, durable once written: nothing to do."""

    def sync_dir(self, folder: Path) -> None:
        """Every PUT is durable when it returns: nothing to flush."""

    # --- copies ---------------------------------------------------------------------------

    def _copy_key(self, src: str, dest: str) -> None:
        """Server-side copy (of what a reference names); an upload's segments are
        composed into one object."""
        followed = self._follow(src)
        if followed is None:
            raise FileNotFoundError(src)
        src, head, _ = followed
        state = self._state_of(src, head)
        if state is None:
            size = int(head["ContentLength"])
            if size <= MAX_COPY:
                self._copy_object(src, dest)
                return
            segments = [Segment(src, size)]
        else:
            segments = state.segments
        self._compose(segments, dest)

    def _copy_object(self, src: str, dest: str) -> None:
        self._client.copy_object(
            Bucket=self.bucket, Key=dest, CopySource={"Bucket": self.bucket, "Key": src}
        )

    def _compose(self, segments: Segments, dest: str) -> None:
        """One object from parts, copied server-side (each part at most 5 GiB)."""
        if not segments or sum(s.size for s in segments) == 0:
            self._client.put_object(Bucket=self.bucket, Key=dest, Body=b"")
            return
        if len(segments) == 1 and segments[0].size <= MAX_COPY:
            self._copy_object(segments[0].key, dest)
            return
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=dest)
        upload_id = upload["UploadId"]
        try:
            parts = []
            number = 1
            for segment in segments:
                for start in range(0, segment.size, MAX_COPY):
                    end = min(start + MAX_COPY, segment.size) - 1
                    reply = self._client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=dest,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": segment.key},
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                    parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]})
                    number += 1
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=dest,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=dest, UploadId=upload_id)
            raise

    # --- listings across a tree (``s3_listings``) ---------------------------------------

    def walk(self, folder: Path) -> Iterator[Listed]:
        return walk_keys(self._client, self.bucket, self._folder_prefix(folder), folder)

    def abort_abandoned_writes(self, older_than: float, dry_run: bool) -> _Names:
        prefix = f"{self.prefix}/" if self.prefix else ""
        return abort_abandoned(self._client, self.bucket, prefix, older_than, dry_run)
