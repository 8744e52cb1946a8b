"""``log``: level and destination."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from dockyard.config.section import Section


class Log(Section):
    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"] = "info"
    output: str | None = None
    #: File getting one JSON line per mutating request (who, what, result).
    audit: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
