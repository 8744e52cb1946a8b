"""``http.ratelimit``: requests per second per client address, overall and per method."""

from __future__ import annotations

from pydantic import Field, field_validator

from dockyard.config.keys import ZotSection


class MethodRate(ZotSection):
    method: str
    rate: float = Field(gt=0)

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class RateLimit(ZotSection):
    #: Requests per second each client address may make, whatever the method.
    rate: float | None = Field(None, gt=0)
    #: Tighter (or looser) limits for one method, counted on their own.
    methods: list[MethodRate] = Field(default_factory=list)
