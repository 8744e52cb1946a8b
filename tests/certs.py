"""Test certificates made with ``cryptography``: a CA, a server certificate for 127.0.0.1,
and client certificates whose Common Name is the user (mTLS).

Nothing touches the system trust store: clients are pointed at ``ca.crt`` explicitly
(httpx through an SSLContext, skopeo and podman through a ``--cert-dir``).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: Key, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Authority:
    """A CA able to issue server and client certificates."""

    name: str
    key: Key
    cert: x509.Certificate
    cert_path: Path

    @classmethod
    def create(cls, folder: Path, name: str = "dockyard test CA") -> Authority:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, cert, _write_cert(cert, folder / "ca.crt"))

    def issue(self, cn: str, cert_path: Path, key_path: Path, *, server: bool) -> x509.Certificate:
        """A leaf certificate for ``cn`` (a server one for 127.0.0.1/localhost, or a client
        one), written as PEM to ``cert_path`` and ``key_path``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        _write_key(key, key_path)
        _write_cert(cert, cert_path)
        return cert

    def client_dir(self, folder: Path, cn: str | None = None) -> Path:
        """A containers-style cert dir: ``ca.crt``, plus ``client.cert``/``.key`` for ``cn``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca.crt").write_bytes(self.cert_path.read_bytes())
        if cn is not None:
            self.issue(cn, folder / "client.cert", folder / "client.key", server=False)
        return folder

    def client_context(self, folder: Path | None = None, cn: str | None = None) -> ssl.SSLContext:
        """An SSLContext trusting this CA only, presenting a client certificate for ``cn``."""
        ctx = ssl.create_default_context(cafile=str(self.cert_path))
        if cn is not None:
            assert folder is not None
            d = self.client_dir(folder, cn)
            ctx.load_cert_chain(d / "client.cert", d / "client.key")
        return ctx


@dataclass
class ServerPki:
    ca: Authority
    cert: Path
    key: Path


def server_pki(folder: Path) -> ServerPki:
    """A CA and a server certificate signed by it, for 127.0.0.1."""
    ca = Authority.create(folder / "ca")
    cert, key = folder / "server.crt", folder / "server.key"
    ca.issue("127.0.0.1", cert, key, server=True)
    return ServerPki(ca, cert, key)


def issue_client_names(
    ca: Authority, names: list[x509.NameAttribute], folder: Path
) -> ssl.SSLContext:
    """A client context trusting ``ca`` and presenting a certificate whose subject is
    exactly ``names`` (for instance two Common Names), signed by ``ca``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    _write_key(key, folder / "client.key")
    _write_cert(cert, folder / "client.cert")
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    ctx.load_cert_chain(folder / "client.cert", folder / "client.key")
    return ctx


def write_crl(ca: Authority, path: Path, revoked: list[x509.Certificate]) -> Path:
    """A PEM CRL signed by ``ca`` listing ``revoked`` (by serial number), written to
    ``path`` through a rename, so a watching server never reads half of it."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    staging = path.with_name(path.name + ".new")
    staging.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    staging.replace(path)
    return path
