"""``http.tls``: serve HTTPS; with ``cacert``, client certificates authenticate (mTLS)."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import field_validator, model_validator

from dockyard.config.auth import existing_file
from dockyard.config.section import ZotSection
from dockyard.util.pem import check_crl


class Tls(ZotSection):
    cert: Path
    key: Path
    #: CA whose client certificates authenticate their Common Name as the user.
    cacert: Path | None = None
    #: PEM CRL(s) from that CA: the client certificates it lists are refused.
    #: dockyard's key; zot has none.
    crl: Path | None = None

    _exists = field_validator("cert", "key")(existing_file)

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        """The certificate and key must load together; say so at load, not at serve."""
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cert and key do not load as a pair: {exc}") from exc
        if self.cacert is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(self.cacert)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"cacert is not a PEM CA certificate: {exc}") from exc
        if self.crl is not None:
            if self.cacert is None:
                raise ValueError("crl: a CRL revokes client certificates; set cacert too")
            try:
                check_crl(self.crl, self.cacert)
            except ValueError as exc:
                raise ValueError(f"crl: {exc}") from exc
        return self

    @field_validator("cacert", "crl")
    @classmethod
    def _optional_file(cls, value: Path | None) -> Path | None:
        return None if value is None or str(value) == "" else existing_file(value)
