"""The whole config: one field per top-level section of zot's format, and ``log``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dockyard.config.extensions import Extensions
from dockyard.config.http import Http
from dockyard.config.section import Section
from dockyard.config.storage import Storage
from dockyard.config.sync import Proxy


class Log(Section):
    """``log``: level and destination."""

    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"] = "info"
    output: str | None = None
    #: File getting one JSON line per mutating request (who, what, result).
    audit: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class Config(Section):
    dist_spec_version: str = Field("1.1.1", alias="distSpecVersion")
    storage: Storage = Field(default_factory=Storage)
    http: Http = Field(default_factory=Http)
    log: Log = Field(default_factory=Log)
    extensions: Extensions = Field(default_factory=Extensions)
    #: distribution's pull-through shortcut: one on-demand upstream (see ``config.sync``).
    proxy: Proxy | None = None
