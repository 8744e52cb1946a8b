"""``http.auth``: who a request comes from (htpasswd, bearer tokens, API keys), zot's keys."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from dockyard.config.section import Duration, ZotSection
from dockyard.util.pem import load_public_key

#: Failed logins a client address may make per minute when ``failLimit`` is not set.
DEFAULT_FAIL_LIMIT = 30


def existing_file(value: Path) -> Path:
    """A path the server must read at start: say so at load time, naming the key."""
    if not value.is_file():
        raise ValueError(f"no such file {str(value)!r}")
    return value


class HtpasswdAuth(ZotSection):
    #: bcrypt entries, ``user:$2y$...`` one a line (``htpasswd -B`` or ``dockyard passwd``).
    path: Path

    _exists = field_validator("path")(existing_file)


class BearerAuth(ZotSection):
    """Docker token authentication: an external token server signs JWTs we verify."""

    realm: str
    service: str
    #: The token server's certificate (or bare public key), PEM.
    cert: Path
    #: When set, a token's ``iss`` must equal it (zot's and distribution's key).
    issuer: str | None = None

    @field_validator("cert")
    @classmethod
    def _key(cls, value: Path) -> Path:
        """The certificate must hold a key tokens can be verified with; say so at load."""
        try:
            load_public_key(existing_file(value))
        except (ValueError, OSError) as exc:  # OSError: there, but not readable
            raise ValueError(f"cannot read a public key from {str(value)!r}: {exc}") from exc
        return value


class Auth(ZotSection):
    #: Seconds to wait before answering a failed login, to slow down guessing.
    fail_delay: float = Field(0.0, alias="failDelay", ge=0)
    #: Failed logins per minute per client address, then 429; 0 turns the limit off.
    fail_limit: int = Field(DEFAULT_FAIL_LIMIT, alias="failLimit", ge=0)
    htpasswd: HtpasswdAuth | None = None
    bearer: BearerAuth | None = None
    #: Long-lived API keys users create over HTTP and use as basic-auth passwords.
    apikey: bool = False
    #: How often expired keys, and keys of users gone from htpasswd, are deleted.
    apikey_purge_interval: Duration = Field(60.0, alias="apikeyPurgeInterval", gt=0)

    @field_validator("htpasswd", mode="before")
    @classmethod
    def _empty_htpasswd(cls, value: object) -> object:
        """zot writes ``"htpasswd": {"path": ""}`` for "off"; treat it so."""
        if isinstance(value, dict) and not any(value.values()):
            return None
        return value
