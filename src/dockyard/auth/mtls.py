"""mTLS: a client certificate verified against ``http.tls.cacert`` names its user.

The TLS layer has already checked the chain (``ssl.CERT_OPTIONAL``/``CERT_REQUIRED``
with the CA loaded), so a certificate that reaches us here is one the CA signed; the
user is its subject's Common Name, as in zot. A subject with several Common Names is
ambiguous (zot takes the first; a CA's profile might put the user in another), so such
a certificate names no one and is refused rather than guessed at.
"""

from __future__ import annotations

from typing import Any


class AmbiguousCertificate(ValueError):
    """A client certificate whose subject holds more than one Common Name."""


def common_name(peercert: Any) -> str | None:
    """The subject CN of a peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it.

    Raises AmbiguousCertificate when the subject has several CN attributes.
    """
    if not isinstance(peercert, dict):
        return None
    names = [
        str(attribute[1])
        for rdn in peercert.get("subject", ())
        for attribute in rdn
        if len(attribute) == 2 and attribute[0] == "commonName"
    ]
    if len(names) > 1:
        raise AmbiguousCertificate(f"the client certificate has {len(names)} Common Names")
    return names[0] if names and names[0] else None
