"""PEM files the config names: a token server's public key, a CA's revocation lists.

Pure reading and checking, with no server state, so the config can validate these files
at load time (naming the key) and the auth and TLS code can use the same functions.
cryptography is imported inside each function: it costs ~10 MB of RSS, paid only when
bearer auth or a CRL is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
_EC_ALGS = ["ES256", "ES384", "ES512"]


def load_public_key(path: Path) -> tuple[Any, list[str]]:
    """The key in a PEM certificate or public-key file, and the algorithms it verifies."""
    # Imported here: cryptography costs ~10 MB of RSS, paid only when bearer auth is on.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = path.read_bytes()
    key: Any
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = load_pem_public_key(data)
    if isinstance(key, rsa.RSAPublicKey):
        return key, _RSA_ALGS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key, _EC_ALGS
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key, ["EdDSA"]
    raise ValueError(f"{path}: unsupported key type {type(key).__name__}")


def check_crl(crl: Path, cacert: Path) -> None:
    """ValueError unless ``crl`` holds PEM CRLs, each signed by a CA in ``cacert``.

    A CRL from another CA would make OpenSSL refuse every client certificate ("unable to
    get certificate CRL"), so that mistake is named at load time.
    """
    from cryptography import x509

    try:
        crl_pem, ca_pem = crl.read_bytes(), cacert.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    blocks = [b for b in crl_pem.split(b"-----END X509 CRL-----") if b"BEGIN X509 CRL" in b]
    if not blocks:
        raise ValueError(f"{str(crl)!r} holds no PEM CRL (-----BEGIN X509 CRL-----)")
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
        lists = [x509.load_pem_x509_crl(b + b"-----END X509 CRL-----\n") for b in blocks]
    except ValueError as exc:
        raise ValueError(f"{str(crl)!r} does not parse: {exc}") from exc
    for revocations in lists:
        issuers = [ca for ca in cas if ca.subject == revocations.issuer]
        if not any(revocations.is_signature_valid(ca.public_key()) for ca in issuers):  # type: ignore[arg-type]
            raise ValueError(
                f"{str(crl)!r} is issued by {revocations.issuer.rfc4514_string()!r}, "
                "not signed by a CA in cacert"
            )
