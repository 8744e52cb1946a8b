"""``http.ratelimit``: requests per second per client address, overall and per method."""

from __future__ import annotations

from pydantic import Field, field_validator

from dockyard.config.keys import ZotSection

#: Clients remembered at most per table (a bucket is ~260 bytes: 100,000 is ~26 MB).
DEFAULT_MAX_CLIENTS = 100_000


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
    #: Clients (IPv4 addresses, IPv6 /64s) remembered at most; past it, the one seen
    #: longest ago is forgotten. dockyard's key: zot keeps no table to bound.
    max_clients: int = Field(DEFAULT_MAX_CLIENTS, alias="maxClients", ge=1)
