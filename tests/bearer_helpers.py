"""The token server's side of bearer auth, shared by the bearer and mirroring tests.

``token_server.py`` runs as a process of its own (``TOKEN_SERVER``) with a policy such as
``TOKEN_POLICY``; ``signing_key`` makes the key it signs with and the certificate dockyard
(or an upstream registry) verifies its tokens against.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The token server's script, run as ``python TOKEN_SERVER ...``.
TOKEN_SERVER = Path(__file__).with_name("token_server.py")

SERVICE = "dockyard-test"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
TOKEN_POLICY = {
    "users": USERS,
    "grants": {
        "alice": {"alice/*": ["pull", "push", "delete"], "shared/*": ["pull"]},
        "bob": {"shared/*": ["pull", "push"]},
        "": {"shared/*": ["pull"]},
    },
    "catalog": ["alice"],
}


def signing_key(folder: Path, name: str) -> tuple[Path, Path]:
    """An EC key and a self-signed certificate for it (what ``cert`` points at)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
