"""``storage``: the default root, its switches, and ``subPaths``."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from dockyard.config.section import DAY, HOUR, Duration, Section, ZotSection

DEFAULT_ROOT = "./dockyard-data"
#: zot's defaults: a blob unreferenced for an hour is garbage; GC runs hourly; an
#: untagged manifest is kept a day.
DEFAULT_GC_DELAY = HOUR
DEFAULT_GC_INTERVAL = HOUR
DEFAULT_RETENTION_DELAY = DAY


class Retention(Section):
    delay: Duration = DEFAULT_RETENTION_DELAY


#: How long a lock or the background lease outlives a replica that stopped renewing it.
DEFAULT_LOCK_EXPIRY = 30.0
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class CacheDriver(Section):
    """zot's ``cacheDriver``: the shared cache of replicas. Only ``redis`` is served: it
    holds the dedupe map, the locks, the background lease and the change counter."""

    name: str
    url: str
    #: zot's key prefix, so two registries can share one Redis.
    keyprefix: str = "dockyard"
    #: dockyard's own key: the expiry of locks and of the lease (renewed while held).
    lock_expiry: Duration = Field(DEFAULT_LOCK_EXPIRY, alias="lockExpiry")

    @field_validator("name")
    @classmethod
    def _redis_only(cls, value: str) -> str:
        if value.lower() != "redis":
            raise ValueError(
                f"cache driver {value!r} is not supported: only 'redis' is (remove "
                "cacheDriver to keep the local SQLite cache of a single node)"
            )
        return "redis"

    @field_validator("keyprefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"must be a non-empty word without spaces, got {value!r}")
        return value

    @field_validator("lock_expiry")
    @classmethod
    def _expiry(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s: renewals run every third of it")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(_REDIS_SCHEMES):
            raise ValueError(f"must be a redis:// (or rediss://, unix://) URL, got {value!r}")
        return value


class _Cached(Section):
    """The cache keys a root and each ``subPaths`` entry have (zot's)."""

    cache_driver: CacheDriver | None = Field(None, alias="cacheDriver")
    remote_cache: bool | None = Field(None, alias="remoteCache")

    @field_validator("remote_cache")
    @classmethod
    def _remote(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is False and info.data.get("cache_driver") is not None:
            raise ValueError(
                "false while cacheDriver is set: remove one of them "
                "(zot reads cacheDriver only with remoteCache true)"
            )
        return value


class StorageDriver(ZotSection):
    """zot's ``storageDriver``: where a root's OCI layouts live instead of the local disk.

    Only ``s3`` (AWS S3 or any S3-compatible store) exists; the root's ``rootDirectory``
    then stays a local folder for the root's private state (locks, SQLite databases, the
    change counter, the catalog log), as zot keeps its cache there. Keys are zot's (and
    distribution's), lower-case; absent keys leave boto3 its usual AWS_* and credential
    file chain.
    """

    name: str
    #: The key prefix the layouts live under, in the bucket.
    root_directory: str = Field("", alias="rootdirectory")
    region: str | None = None
    #: With or without a scheme; without one, ``secure`` decides http or https.
    region_endpoint: str | None = Field(None, alias="regionendpoint")
    bucket: str
    secure: bool = True
    skip_verify: bool = Field(False, alias="skipverify")
    access_key: str | None = Field(None, alias="accesskey", repr=False)
    secret_key: str | None = Field(None, alias="secretkey", repr=False)
    #: dockyard's own key (zot has none; distribution's is ``storage.redirect``): a blob
    #: GET gets a 307 to a presigned URL of the object, valid 20 minutes, after the
    #: access check. Clients must reach the bucket's endpoint themselves.
    redirect: bool = False

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value.lower() != "s3":
            raise ValueError(f"storage driver {value!r} is not supported; the one driver is 's3'")
        return "s3"

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an S3 storage driver needs a bucket name")
        return value.strip()


class SubPath(_Cached):
    root_directory: Path = Field(alias="rootDirectory")
    storage_driver: StorageDriver | None = Field(None, alias="storageDriver")
    dedupe: bool = True
    gc: bool = True
    gc_delay: Duration = Field(DEFAULT_GC_DELAY, alias="gcDelay")


class Storage(_Cached):
    root_directory: Path = Field(Path(DEFAULT_ROOT), alias="rootDirectory")
    storage_driver: StorageDriver | None = Field(None, alias="storageDriver")
    dedupe: bool = True
    gc: bool = True
    gc_delay: Duration = Field(DEFAULT_GC_DELAY, alias="gcDelay")
    gc_interval: Duration = Field(DEFAULT_GC_INTERVAL, alias="gcInterval")
    retention: Retention = Field(default_factory=Retention)
    sub_paths: dict[str, SubPath] = Field(default_factory=dict, alias="subPaths")

    @field_validator("sub_paths")
    @classmethod
    def _prefixes(cls, value: dict[str, SubPath]) -> dict[str, SubPath]:
        for prefix in value:
            if not re.fullmatch(r"/?[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", prefix):
                raise ValueError(f"subPaths key {prefix!r} must be one repository path part")
        return value
