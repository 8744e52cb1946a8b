"""``extensions``: the optional features zot switches on in config (metrics, scrub,
search, ui).

As in zot, a section that is present is on unless it says ``"enable": false``; a section
that is absent is off. Extensions dockyard does not implement (``search.cve`` ...) stay
unknown keys and are named in a warning.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dockyard.config.section import DAY, Duration, Section
from dockyard.config.sync import Sync

DEFAULT_METRICS_PATH = "/metrics"
#: zot's default: one scrub pass a day.
DEFAULT_SCRUB_INTERVAL = DAY


class Prometheus(Section):
    path: str = DEFAULT_METRICS_PATH

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        """A path of its own: never under ``/v2/``, where it would shadow a repository."""
        if not value.startswith("/") or value.rstrip("/") in ("", "/v2") or "{" in value:
            raise ValueError(f"must be an absolute path such as '/metrics', got {value!r}")
        if value.startswith("/v2/"):
            raise ValueError(f"must not be under /v2/, got {value!r}")
        return value


class Metrics(Section):
    enable: bool = True
    prometheus: Prometheus = Field(default_factory=Prometheus)
    #: A listener of the metrics' own (dockyard's keys): with ``port`` set, the metrics
    #: are served there, without a login, and no longer on the registry's port.
    address: str = "127.0.0.1"
    port: int | None = Field(None, gt=0, lt=65536)

    @property
    def separate(self) -> bool:
        return self.port is not None


class Scrub(Section):
    enable: bool = True
    interval: Duration = DEFAULT_SCRUB_INTERVAL

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration such as '24h'")
        return value


class Search(Section):
    enable: bool = True


class Ui(Section):
    enable: bool = True


class Extensions(Section):
    metrics: Metrics | None = None
    scrub: Scrub | None = None
    sync: Sync | None = None
    search: Search | None = None
    ui: Ui | None = None

    @model_validator(mode="after")
    def _ui_needs_search(self) -> Extensions:
        """As in zot: the UI reads everything through search, so it cannot run alone."""
        if self.ui_on and not self.search_on:
            raise ValueError("ui: needs extensions.search enabled too")
        return self

    @property
    def search_on(self) -> bool:
        return self.search is not None and self.search.enable

    @property
    def ui_on(self) -> bool:
        return self.ui is not None and self.ui.enable

    @property
    def metrics_on(self) -> bool:
        return self.metrics is not None and self.metrics.enable

    @property
    def scrub_on(self) -> bool:
        return self.scrub is not None and self.scrub.enable

    @property
    def sync_on(self) -> bool:
        return self.sync is not None and self.sync.enable and bool(self.sync.registries)
