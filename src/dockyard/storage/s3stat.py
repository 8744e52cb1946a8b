"""What S3 says of an object, as the ``os.stat_result`` the storage engine compares.

One home for the mapping, because two answers must give equal stats: boto3's HEAD
(``S3Backend.stat``, ``resolve``) and the headers of a presigned GET or HEAD the server
sends itself (``S3Backend.url_answer``). A blob's verified stamp (``storage.stamps``)
is keyed by that stat's ``st_ino`` (from the ETag) and compares its size and
``st_mtime_ns`` (from ``Last-Modified``), so a stat made from the GET that streams the
bytes passes exactly when the HEAD's stat would have, and no sooner.
"""

from __future__ import annotations

import os
import stat as stat_mode
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

#: Object metadata that marks an appendable upload's state object.
APPENDABLE = "dockyard-appendable"
#: Object metadata of a reference object: the key it names, relative to the prefix.
REFERENCE = "dockyard-ref"
_META = "x-amz-meta-"


def identity(etag: str) -> int:
    """A stable number for an object's content version, standing in for an inode."""
    digits = "".join(c for c in etag if c in "0123456789abcdef")
    return int(digits[:15] or "0", 16)


def stat_result(
    size: int,
    modified: datetime,
    etag: str,
    *,
    folder: bool = False,
    named: datetime | None = None,
) -> os.stat_result:
    """``named``: when a reference was written (its ``st_ctime``, GC's age of the name, as
    a link bumps an inode's); the target's time stays ``st_mtime`` and its ETag the
    identity, so every name of one stored copy shares its verified stamp."""
    mode = (stat_mode.S_IFDIR | 0o755) if folder else (stat_mode.S_IFREG | 0o644)
    seconds = modified.timestamp()
    changed = (named or modified).timestamp()
    ns = int(seconds * 1e9)
    whole = int(seconds)
    times = (whole, whole, int(changed), seconds, seconds, changed, ns, ns, int(changed * 1e9))
    links = 1 if named is None else 2
    return os.stat_result((mode, identity(etag), 0, links, 0, 0, size, *times))


def stat_of(head: dict[str, Any], reference: dict[str, Any] | None) -> os.stat_result:
    """The stat of an object (boto3's HEAD of it), or of the one ``reference`` (its HEAD)
    names."""
    if reference is not None:
        return stat_result(
            int(head["ContentLength"]),
            head["LastModified"],
            head["ETag"],
            named=reference["LastModified"],
        )
    size = int(head["ContentLength"])
    if APPENDABLE in head.get("Metadata", {}):
        size = int(head["Metadata"].get("size", "0"))
    return stat_result(size, head["LastModified"], head["ETag"])


def answer_of(headers: Mapping[str, str]) -> tuple[os.stat_result, str | None] | None:
    """(stat, the key a reference names relative to the prefix, or None) from the
    headers of a whole-object GET or a HEAD; None when they do not say for sure.

    An upload's state object (whose bytes are its segments) is refused: it is never
    served from a URL.
    """
    found = {k.lower(): v for k, v in headers.items()}
    if _META + APPENDABLE in found:
        return None
    try:
        size = int(found["content-length"])
        modified = http_date(found["last-modified"])
        etag = found["etag"]
    except (KeyError, ValueError, TypeError, OverflowError):
        return None
    if size < 0:
        return None
    return stat_result(size, modified, etag), found.get(_META + REFERENCE)


def http_date(value: str) -> datetime:
    """``Last-Modified`` as a time, equal to botocore's parse of it (its HEAD's
    ``LastModified``). The standard library reads HTTP's date forms in 3 µs, botocore's
    dateutil in 40; anything it cannot read as a UTC time goes to botocore's parser."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed
    # botocore parsed boto3's HEAD; it is loaded in any process with an S3 root.
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)
