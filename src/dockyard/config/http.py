"""``http``: where to listen."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dockyard.config.access import AccessControl
from dockyard.config.auth import Auth
from dockyard.config.keys import ZotSection
from dockyard.config.ratelimit import RateLimit
from dockyard.config.section import Duration
from dockyard.config.security import check_security
from dockyard.config.tls import Tls

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5000


class Http(ZotSection):
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    #: On SIGTERM: how long in-flight requests may take to finish before they are cut.
    shutdown_timeout: Duration = Field(30.0, alias="shutdownTimeout")
    #: Security (issue 4): see dockyard.auth and dockyard.app.security.
    auth: Auth | None = None
    access_control: AccessControl | None = Field(None, alias="accessControl")
    tls: Tls | None = None
    ratelimit: RateLimit | None = None
    #: The realm named in Basic challenges.
    realm: str = "dockyard"

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

    @model_validator(mode="after")
    def _security(self) -> Http:
        """Auth, access control and TLS settings that cannot work together fail at load."""
        check_security(self.auth, self.access_control, self.tls)
        return self
