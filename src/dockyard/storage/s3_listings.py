"""What GC asks of a bucket beyond one object at a time: listings across a whole tree.

Both walk a prefix in pages of a thousand keys, so their cost grows with the keys under
it, never with how deeply they nest. Plain functions over a boto3 client, so the S3
backend stays a map of the interface's file operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from dockyard.storage.backend import Listed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def walk_keys(client: S3Client, bucket: str, prefix: str, folder: Path) -> Iterator[Listed]:
    """Every object under ``prefix`` (``folder``'s keys, ending in "/"), as files under
    ``folder``: one flat listing, no delimiter."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            path = folder / obj["Key"][len(prefix) :]
            yield Listed(path, int(obj["Size"]), obj["LastModified"].timestamp())


def abort_abandoned(
    client: S3Client, bucket: str, prefix: str, older_than: float, dry_run: bool
) -> list[str]:
    """Abort multipart uploads under ``prefix`` started over ``older_than`` seconds ago.

    A publish composes segments with a multipart upload and aborts it on any error, but
    a crash (kill -9, a lost machine) between its start and its completion leaves it
    open: no listing shows it, and the store bills its parts until it is aborted.
    """
    now = datetime.now(UTC)
    aborted: list[str] = []
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            if (now - upload["Initiated"]).total_seconds() < older_than:
                continue
            if not dry_run:
                try:
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
                    continue  # finished or aborted meanwhile
            aborted.append(f"{upload['Key']} ({upload['UploadId']})")
    return aborted
