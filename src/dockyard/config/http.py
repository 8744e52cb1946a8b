"""``http``: where to listen, rate limits, and the checks across auth, access and TLS.

The cross-section checks each name the key to change, so a config that could never let
anyone in (or would let everyone in by mistake) stops at load time instead of
surprising its users later.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dockyard.config.access_control import AccessControl
from dockyard.config.auth import Auth
from dockyard.config.section import Duration, ZotSection
from dockyard.config.tls import Tls

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


def check_security(auth: Auth | None, access: AccessControl | None, tls: Tls | None) -> None:
    """Raise ValueError when these sections cannot work together."""
    login = auth is not None and (auth.htpasswd is not None or auth.bearer is not None)
    mtls = tls is not None and tls.cacert is not None
    if auth is not None and auth.apikey and not (auth.htpasswd or mtls):
        raise ValueError(
            "auth.apikey: API keys are created by a user logged in with a password or a "
            "client certificate; configure auth.htpasswd or tls.cacert too"
        )
    if auth is not None and auth.apikey and auth.bearer is not None:
        raise ValueError("auth.apikey: API keys are basic-auth passwords, unused with bearer")
    if access is not None and not (login or mtls) and not access.only_anonymous():
        raise ValueError(
            "accessControl: policies for users need a way to log in: configure "
            "auth.htpasswd, auth.bearer or tls.cacert, or use only anonymousPolicy"
        )


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
    #: Worker processes serving the one listener; None: one per CPU. dockyard's own key
    #: (zot is one Go process, which uses every core by itself).
    workers: int | None = Field(None, ge=1, le=256)

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
