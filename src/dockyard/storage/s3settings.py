"""Where a root's bucket is and how to reach it: the settings of zot's ``storageDriver``.

Kept apart from the backend so that reading a config (and a store on the local disk)
never imports boto3; :meth:`S3Settings.client` does, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to reach it (zot's ``storageDriver`` keys)."""

    bucket: str
    #: ``rootdirectory``: the key prefix the layout lives under.
    prefix: str = ""
    region: str | None = None
    #: ``regionendpoint``, with or without a scheme; without one, ``secure`` decides.
    endpoint: str | None = None
    secure: bool = True
    skip_verify: bool = False
    #: Absent keys leave boto3 its usual chain: AWS_* variables, credential files, roles.
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    #: Answer a blob GET with a 307 to a presigned URL of its object, so clients fetch
    #: the bytes from the store itself (distribution's ``storage.redirect``); off: the
    #: server streams them.
    redirect: bool = False

    def endpoint_url(self) -> str | None:
        if not self.endpoint:
            return None
        if "://" in self.endpoint:
            return self.endpoint
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def client(self, *, quick: bool = False) -> S3Client:
        """A boto3 client; ``quick`` for a probe (``verify``, ``/readyz``): short timeouts
        and one retry, so an unreachable endpoint is reported in seconds, not minutes."""
        # boto3 is imported here, not at start-up: a root on the local disk never needs it.
        import boto3
        from botocore.config import Config as BotoConfig

        keys: dict[str, str] = {}
        if self.access_key and self.secret_key:
            keys = {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
        # A pool as large as the upload threads, and the SDK's standard retries (throttling,
        # 5xx, connection resets) so one hiccup does not fail a client's request.
        # SigV4 named, or botocore presigns URLs with SigV2, which newer regions refuse.
        config = BotoConfig(
            max_pool_connections=64, retries={"mode": "standard"}, signature_version="s3v4"
        )
        if quick:
            config = BotoConfig(
                connect_timeout=3,
                read_timeout=3,
                retries={"mode": "standard", "max_attempts": 2},
                signature_version="s3v4",
            )
        client: S3Client = boto3.session.Session().client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint_url(),
            use_ssl=self.secure,
            verify=not self.skip_verify,
            config=config,
            **keys,
        )
        return client


def bucket_problem(settings: S3Settings) -> str | None:
    """Why the bucket cannot be used (HeadBucket: reachable, there, and ours to use);
    None when it answers."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        settings.client(quick=True).head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        reason = {"404": "does not exist", "403": "access denied", "NoSuchBucket": "does not exist"}
        return f"bucket {settings.bucket!r}: {reason.get(code, error.get('Message') or code)}"
    except (BotoCoreError, ValueError) as exc:
        return f"bucket {settings.bucket!r} cannot be reached: {exc}"
    return None
