"""``http``: where to listen."""

from __future__ import annotations

from pydantic import field_validator

from dockyard.config.section import Section

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5000


class Http(Section):
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> int:
        """zot writes the port as a string; accept that and numbers, nothing else."""
        try:
            port = int(value) if isinstance(value, str | int) and value is not True else -1
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ValueError(f"must be a port number from 1 to 65535, got {value!r}")
        return port
