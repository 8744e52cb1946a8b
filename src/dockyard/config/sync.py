"""``extensions.sync`` in zot's keys, and distribution's ``proxy`` shortcut.

Keys zot has and dockyard does not act on (``onlySigned``, ``preserveDigest``,
``platforms``, ``credentialHelper``, ...) are accepted and named in a warning by
:func:`unsupported_sync_keys`, so a zot config loads and says what it will not do.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from dockyard.config.section import HOUR, Duration, Section
from dockyard.util.globs import compile_glob

#: dockyard's own default for how long an on-demand tag is served before its digest is
#: checked against the upstream again (see README, "Mirroring").
DEFAULT_TAG_TTL = 300.0
#: How long ``dockyard sync`` (without ``--once``) waits between passes when no registry
#: sets ``pollInterval``.
DEFAULT_SYNC_WAIT = HOUR


class SyncTags(Section):
    regex: str | None = None
    exclude_regex: str | None = Field(None, alias="excludeRegex")
    semver: bool = False

    @field_validator("regex", "exclude_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a regular expression: {exc}") from exc
        return value


class SyncContent(Section):
    prefix: str
    tags: SyncTags | None = None
    destination: str | None = None
    strip_prefix: bool = Field(False, alias="stripPrefix")

    @field_validator("prefix")
    @classmethod
    def _glob(cls, value: str) -> str:
        value = value.strip("/")
        if not value:
            raise ValueError("must name repositories, such as 'library/**'")
        compile_glob(value)  # ValueError names a malformed glob
        return value

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        return value.strip("/") if value is not None else None


class SyncRegistry(Section):
    urls: list[str]
    on_demand: bool = Field(False, alias="onDemand")
    poll_interval: Duration | None = Field(None, alias="pollInterval")
    tls_verify: bool = Field(True, alias="tlsVerify")
    cert_dir: str | None = Field(None, alias="certDir")
    max_retries: int = Field(0, alias="maxRetries", ge=0)
    retry_delay: Duration = Field(0.0, alias="retryDelay")
    content: list[SyncContent] = Field(default_factory=lambda: [SyncContent(prefix="**")])
    #: dockyard's own key: on-demand tags are re-checked upstream after this long.
    tag_ttl: Duration = Field(DEFAULT_TAG_TTL, alias="tagTTL")
    #: Known zot keys dockyard accepts but does not act on (see the module docstring).
    only_signed: bool | None = Field(None, alias="onlySigned")
    preserve_digest: bool | None = Field(None, alias="preserveDigest")
    platforms: list[Any] | None = None

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one upstream URL")
        for url in value:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"must be http:// or https:// URLs, got {url!r}")
        return [url.rstrip("/") for url in value]


class Sync(Section):
    enable: bool = True
    credentials_file: str | None = Field(None, alias="credentialsFile")
    registries: list[SyncRegistry] = Field(default_factory=list)


class Proxy(Section):
    """distribution's pull-through cache: one upstream, on demand only."""

    remoteurl: str
    username: str | None = None
    password: str | None = None

    @model_validator(mode="after")
    def _url(self) -> Proxy:
        if not re.match(r"^https?://[^/\s]+", self.remoteurl):
            raise ValueError(f"remoteurl must be an http:// or https:// URL: {self.remoteurl!r}")
        return self


#: zot keys of a registry entry that dockyard warns about rather than acts on.
_UNSUPPORTED = {
    "only_signed": "onlySigned",
    "preserve_digest": "preserveDigest",
    "platforms": "platforms",
}


def unsupported_sync_keys(sync: Sync | None) -> list[str]:
    """Warnings for zot keys a config sets that dockyard does not act on, by name."""
    if sync is None:
        return []
    found = []
    for i, registry in enumerate(sync.registries):
        for field, key in _UNSUPPORTED.items():
            value = getattr(registry, field)
            # dockyard never converts manifests: preserveDigest true is what it always does.
            if value is None or (field == "preserve_digest" and value):
                continue
            found.append(f"extensions.sync.registries[{i}].{key}")
    return found
