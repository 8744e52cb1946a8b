"""HTTPS for ``http.tls``: the server's SSL context, and its files reloaded in place.

A renewed certificate (certbot, cert-manager), a replaced client CA (``cacert``) and a
new CRL (``crl``) are picked up without a restart: a watcher checks the files' mtimes
every few seconds (and a SIGHUP or config reload checks at once), builds a complete new
context from them, and every new handshake then uses it; connections already open keep
theirs. A set of files caught half-written (a new certificate beside the old key) fails
to build and is retried on the next tick, so TLS never breaks and nothing is
half-applied.

Why a new context rather than loading into the live one: OpenSSL can add CAs to a
context's trust store but never remove one, so a replaced CA would stay trusted. The
listening context's ``sni_callback`` (which OpenSSL calls on every ClientHello, with or
without a server name) switches each new connection to the newest context; its trust
store and CRLs are then the ones that verify the client's certificate.

A resumed TLS session is not verified again. Session tickets are therefore off with
``cacert``; TLS 1.2 session-ID resumption cannot be switched off from Python, so
:meth:`ServerTls.stale_resumption` tells the auth layer when a session predates the
latest change of ``cacert`` or ``crl``, and its certificate is then not believed.

With ``cacert``, client certificates signed by that CA are verified and authenticate
their Common Name (mTLS). They are optional when another way to log in exists, and
required when client certificates are the only one. With ``crl`` as well, the leaf
certificate must not be on the CA's revocation list.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

from dockyard.util.pem import check_crl

log = logging.getLogger("dockyard.tls")

#: How often the certificate files are checked for a renewal.
RELOAD_SECONDS = 2.0


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...] | None:
    try:
        return tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in (os.stat(p) for p in paths))
    except OSError:
        return None


class ServerTls:
    """An SSL context for serving, and the watcher that keeps its files current."""

    def __init__(
        self,
        cert: Path,
        key: Path,
        cacert: Path | None = None,
        require_client: bool = False,
        crl: Path | None = None,
    ) -> None:
        self.cert, self.key, self.cacert, self.crl = cert, key, cacert, crl
        self.require_client = require_client
        #: The listening context. Its verify mode and flags apply to every connection.
        self.context = self._build()
        #: The newest complete context, which new connections are switched to.
        self._active = self.context
        self.context.sni_callback = self._switch
        self._stamp = _stamp(self.files)
        self._trust_stamp = _stamp(self.trust_files)
        #: Wall-clock time of the latest change of ``cacert`` or ``crl`` (0: none yet).
        self.trust_changed = 0.0

    @property
    def trust_files(self) -> tuple[Path, ...]:
        """The files that decide which client certificates are good."""
        return tuple(p for p in (self.cacert, self.crl) if p is not None)

    def stale_resumption(self, ssl_object: Any) -> bool:
        """Whether this connection resumed a TLS session opened before the client CA or
        CRL last changed: its client certificate was checked against trust since
        replaced. (Session times are whole seconds: the second of a change counts as
        before it.)"""
        if not self.trust_changed or not getattr(ssl_object, "session_reused", False):
            return False
        session = getattr(ssl_object, "session", None)
        return session is None or session.time <= self.trust_changed

    @property
    def files(self) -> tuple[Path, ...]:
        optional = (p for p in (self.cacert, self.crl) if p is not None)
        return (self.cert, self.key, *optional)

    def _build(self) -> ssl.SSLContext:
        # A bare server context, not create_default_context(): that one would also trust
        # the system's public CAs for client certificates, letting any publicly issued
        # certificate with CN=admin log in as admin.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.cacert is not None:
            # No resumption: a session is not re-verified against a replaced CA or CRL.
            context.options |= ssl.OP_NO_TICKET
            context.num_tickets = 0
            context.load_verify_locations(cafile=str(self.cacert))
            if self.crl is not None:
                check_crl(self.crl, self.cacert)
                context.load_verify_locations(cafile=str(self.crl))
                context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            context.verify_mode = ssl.CERT_REQUIRED if self.require_client else ssl.CERT_OPTIONAL
        return context

    def _switch(self, connection: Any, server_name: str | None, context: Any) -> None:
        """sni_callback: hand a new connection the newest context."""
        active = self._active
        if context is not active:
            connection.context = active

    def reload_if_changed(self) -> bool:
        """Build a new context when a file changed, and use it from the next handshake;
        True when it did. A set of files that does not load is retried next time."""
        stamp = _stamp(self.files)
        if stamp is None or stamp == self._stamp:
            return False
        try:
            fresh = self._build()
        except (ssl.SSLError, OSError, ValueError) as exc:
            log.warning("renewed TLS files not loaded yet (%s); retrying", exc)
            return False
        trust = _stamp(self.trust_files)
        if trust != self._trust_stamp:
            self.trust_changed = time.time()
            self._trust_stamp = trust
        self._active = fresh
        self._stamp = stamp
        log.info("loaded renewed TLS files: %s", ", ".join(str(p) for p in self.files))
        return True

    async def watch(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                log.exception("certificate reload failed")
