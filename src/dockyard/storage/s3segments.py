"""Appendable uploads on an object store: segments named by a compare-and-swap state object.

S3 cannot append, and the parts of an unfinished multipart upload cannot be read back (a
session moved to another replica could neither re-hash nor roll back its bytes). An upload
is therefore a small state object at its own key listing *segments*: plain objects. Segments
of at least :data:`MIN_PART` bytes are sealed; only the last may be smaller, and the next
sync rewrites it with the new bytes. Every byte acknowledged by ``sync`` is in a segment the
state names, and the state is replaced only if nobody else replaced it since it was read, so
two writers of one upload never both win (:class:`ConcurrentAppend`).

The objects themselves are reached through :class:`SegmentStore`, which the S3 backend
implements; this module knows nothing of buckets or clients.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

#: S3's smallest part of a multipart upload (all but the last): a segment is sealed at it.
MIN_PART = 5 * 1024 * 1024
#: Bytes buffered before a segment goes out even without a sync: bounds an upload's memory.
SEGMENT = 8 * 1024 * 1024


class ConcurrentAppend(OSError):
    """Another writer changed the upload since this one read it: nothing was replaced."""


@dataclass
class Segment:
    key: str
    size: int


#: An upload's segments in order (named so: ``S3Backend.list`` shadows the builtin there).
Segments = list[Segment]


@dataclass
class AppendState:
    """What the state object of an upload says, and the ETag it was read at."""

    segments: list[Segment] = field(default_factory=list)
    etag: str | None = None

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def dump(self) -> bytes:
        return json.dumps({"segments": [[s.key, s.size] for s in self.segments]}).encode()

    @classmethod
    def load(cls, data: bytes, etag: str) -> AppendState:
        doc = json.loads(data)
        return cls([Segment(str(k), int(n)) for k, n in doc["segments"]], etag)


class SegmentStore(Protocol):
    """The object operations an appendable upload is made of."""

    def get_body(self, key: str, start: int = 0) -> Any:
        """A streaming body of the object from ``start``; FileNotFoundError if absent."""

    def get_bytes(self, key: str) -> bytes: ...

    def put_segment(self, upload_key: str, data: bytes) -> Segment:
        """Store ``data`` as a new segment object of the upload at ``upload_key``."""

    def put_state(self, key: str, state: AppendState) -> AppendState:
        """Replace the upload's state if nobody did since it was read (ConcurrentAppend)."""

    def delete_key(self, key: str) -> None: ...


class SegmentReader(io.RawIOBase):
    """Reads an upload's segments in order from ``offset``, one ranged GET at a time."""

    def __init__(self, store: SegmentStore, segments: list[Segment], offset: int) -> None:
        self._store = store
        self._pending = []
        skip = offset
        for segment in segments:
            if skip >= segment.size:
                skip -= segment.size
                continue
            self._pending.append((segment.key, skip))
            skip = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._body is None:
                if not self._pending:
                    return 0
                key, start = self._pending.pop(0)
                self._body = self._store.get_body(key, start)
            data = self._body.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._body.close()
            self._body = None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


class S3Appender:
    """Appends to an upload kept as segments; ``sync`` publishes them in the state object."""

    def __init__(self, store: SegmentStore, key: str, state: AppendState) -> None:
        self._store = store
        self._key = key
        self._state = state
        #: Segments written since the last sync, not yet named by the state object.
        self._unsynced: list[Segment] = []
        self._pending = bytearray()
        #: The bytes of the state's last segment when it is smaller than a part (it gets
        #: rewritten with what follows), read lazily; None until this append needs it.
        self._tail: bytes | None = None
        #: The last small segment this appender wrote (key, bytes): no GET to reopen it.
        self._written: tuple[str, bytes] | None = None

    def _open_tail(self) -> None:
        """Take a small last segment back into the buffer, so the next one is whole."""
        if self._tail is not None:
            return
        segments = self._state.segments
        if segments and segments[-1].size < MIN_PART:
            last = segments[-1].key
            known = self._written
            self._tail = known[1] if known and known[0] == last else self._store.get_bytes(last)
            self._pending[:0] = self._tail
        else:
            self._tail = b""

    def write(self, data: bytes | bytearray) -> None:
        self._open_tail()
        self._pending += data
        while len(self._pending) >= SEGMENT:
            # One copy of the segment, not two (a bytearray slice, then bytes of it): with
            # eight uploads streaming at once that is 64 MiB less at the peak.
            view = memoryview(self._pending)
            try:
                segment = bytes(view[:SEGMENT])
            finally:
                view.release()
            del self._pending[:SEGMENT]
            self._put_segment(segment)

    def _put_segment(self, data: bytes) -> None:
        self._unsynced.append(self._store.put_segment(self._key, data))

    def sync(self) -> None:
        if not self._unsynced and not self._pending:
            return
        self._open_tail()
        if self._pending:
            data = bytes(self._pending)
            self._put_segment(data)
            self._pending.clear()
            self._written = (self._unsynced[-1].key, data) if len(data) < MIN_PART else None
        segments = list(self._state.segments)
        replaced = []
        if self._tail:
            replaced.append(segments.pop())  # its bytes lead the first new segment
        new = AppendState(segments + self._unsynced, self._state.etag)
        self._state = self._store.put_state(self._key, new)
        self._unsynced = []
        self._tail = None
        for segment in replaced:
            self._store.delete_key(segment.key)

    def truncate(self, size: int) -> None:
        """Drop everything past ``size``: unsynced bytes, and segments the state names."""
        for segment in self._unsynced:
            self._store.delete_key(segment.key)
        self._unsynced, self._pending, self._tail, self._written = [], bytearray(), None, None
        kept: list[Segment] = []
        dropped: list[Segment] = []
        offset = 0
        for segment in self._state.segments:
            if offset + segment.size <= size:
                kept.append(segment)
            elif offset < size:
                head = self._store.get_bytes(segment.key)[: size - offset]
                kept.append(self._store.put_segment(self._key, head))
                dropped.append(segment)
            else:
                dropped.append(segment)
            offset += segment.size
        if not dropped:
            return
        self._state = self._store.put_state(self._key, AppendState(kept, self._state.etag))
        for segment in dropped:
            self._store.delete_key(segment.key)

    def close(self) -> None:
        """Unsynced bytes were never acknowledged: they are dropped, as a crash would."""
        for segment in self._unsynced:
            self._store.delete_key(segment.key)
        self._unsynced, self._pending = [], bytearray()
