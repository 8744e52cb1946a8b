"""mTLS: a client certificate verified against ``http.tls.cacert`` names its user.

The TLS layer has already checked the chain (``ssl.CERT_OPTIONAL``/``CERT_REQUIRED``
with the CA loaded), so a certificate that reaches us here is one the CA signed; the
user is its subject's Common Name, as in zot.
"""

from __future__ import annotations

from typing import Any


def common_name(peercert: Any) -> str | None:
    """The subject CN of a peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for attribute in rdn:
            if len(attribute) == 2 and attribute[0] == "commonName" and attribute[1]:
                return str(attribute[1])
    return None
