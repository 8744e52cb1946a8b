"""HTTPS for ``http.tls``: the server's SSL context, and certificate renewal in place.

A renewed certificate (certbot, cert-manager) is picked up without a restart: a watcher
checks the files' mtimes every few seconds and loads the new pair into the same
context, which every new handshake then uses; connections already open keep theirs. A
pair is first loaded into a scratch context, so a renewal caught half-written (a new
certificate beside the old key) is retried on the next tick instead of breaking TLS.

With ``cacert``, client certificates signed by that CA are verified and authenticate
their Common Name (mTLS). They are optional when another way to log in exists, and
required when client certificates are the only one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger("dockyard.tls")

#: How often the certificate files are checked for a renewal.
RELOAD_SECONDS = 2.0


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...] | None:
    try:
        return tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
    except OSError:
        return None


class ServerTls:
    """An SSL context for serving, and the renewal watcher that keeps it current."""

    def __init__(
        self, cert: Path, key: Path, cacert: Path | None = None, require_client: bool = False
    ) -> None:
        self.cert, self.key = cert, key
        # A bare server context, not create_default_context(): that one would also trust
        # the system's public CAs for client certificates, letting any publicly issued
        # certificate with CN=admin log in as admin.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert, key)
        if cacert is not None:
            self.context.load_verify_locations(cafile=str(cacert))
            self.context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
        self._stamp = _stamp((cert, key))

    def reload_if_changed(self) -> bool:
        """Load a renewed certificate and key into the live context; True when it did."""
        stamp = _stamp((self.cert, self.key))
        if stamp is None or stamp == self._stamp:
            return False
        scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            scratch.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            log.warning("renewed certificate not loaded yet (%s); retrying", exc)
            return False
        self.context.load_cert_chain(self.cert, self.key)
        self._stamp = stamp
        log.info("loaded renewed certificate %s", self.cert)
        return True

    async def watch(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                log.exception("certificate reload failed")
