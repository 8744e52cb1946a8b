"""The whole config: one field per top-level section of zot's format."""

from __future__ import annotations

from pydantic import Field

from dockyard.config.extensions import Extensions
from dockyard.config.http import Http
from dockyard.config.log import Log
from dockyard.config.section import Section
from dockyard.config.storage import Storage
from dockyard.config.sync import Proxy


class Config(Section):
    dist_spec_version: str = Field("1.1.1", alias="distSpecVersion")
    storage: Storage = Field(default_factory=Storage)
    http: Http = Field(default_factory=Http)
    log: Log = Field(default_factory=Log)
    extensions: Extensions = Field(default_factory=Extensions)
    #: distribution's pull-through shortcut: one on-demand upstream (see ``config.sync``).
    proxy: Proxy | None = None
