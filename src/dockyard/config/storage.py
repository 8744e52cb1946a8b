"""``storage``: the default root, its switches, and ``subPaths``."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from dockyard.config.section import DAY, HOUR, Duration, Section

DEFAULT_ROOT = "./dockyard-data"
#: zot's defaults: a blob unreferenced for an hour is garbage; GC runs hourly; an
#: untagged manifest is kept a day.
DEFAULT_GC_DELAY = HOUR
DEFAULT_GC_INTERVAL = HOUR
DEFAULT_RETENTION_DELAY = DAY


class Retention(Section):
    delay: Duration = DEFAULT_RETENTION_DELAY


class SubPath(Section):
    root_directory: Path = Field(alias="rootDirectory")
    dedupe: bool = True
    gc: bool = True
    gc_delay: Duration = Field(DEFAULT_GC_DELAY, alias="gcDelay")


class Storage(Section):
    root_directory: Path = Field(Path(DEFAULT_ROOT), alias="rootDirectory")
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
