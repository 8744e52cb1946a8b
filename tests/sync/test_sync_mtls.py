"""mTLS to the upstream: zot's ``certDir`` with ``client.cert`` and ``client.key``.

The upstream is a second dockyard whose only way in is a client certificate from the test
CA (``http.tls.cacert`` and no other login), so it refuses the TLS handshake of a client
without one. The mirror presents the pair from its ``certDir``; without the pair the fetch
fails cleanly: a prompt 404, one warning line, no error and no traceback in the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config
from certs import ServerPki, server_pki
from conftest import Server
from spec_helpers import MANIFEST_ACCEPT, Pushed, assert_error, push_image
from sync_helpers import quiet_log, sync_config


@dataclass
class MtlsUpstream:
    server: Server
    pki: ServerPki
    image: Pushed


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsUpstream]:
    tmp = tmp_path_factory.mktemp("mtls-upstream")
    pki = server_pki(tmp / "pki")
    tls = {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)}
    config = write_config(tmp / "config.json", {"tls": tls})
    pusher = pki.ca.client_context(tmp / "pusher", "pusher")
    with serving(tmp / "data", config, tls=pusher) as server:
        with httpx.Client(base_url=server.url, verify=pusher, timeout=30) as c:
            image = push_image(c, "apps/app", "v1", layers=2)
        yield MtlsUpstream(server, pki, image)


def _mirror(tmp_path: Path, upstream: MtlsUpstream, cert_dir: Path, **entry: object) -> Path:
    registry = {
        "urls": [upstream.server.url],
        "onDemand": True,
        "certDir": str(cert_dir),
        "content": [{"prefix": "apps/**"}],
        **entry,
    }
    return sync_config(tmp_path / "config.json", [registry])


def test_the_upstream_refuses_a_client_without_a_certificate(upstream: MtlsUpstream) -> None:
    """The fixture is what it claims: no client certificate, no answer at all."""
    with (
        pytest.raises(httpx.HTTPError),
        httpx.Client(verify=upstream.pki.ca.client_context(), timeout=10) as c,
    ):
        c.get(f"{upstream.server.url}/v2/apps/app/manifests/v1").raise_for_status()


def test_client_pair_in_cert_dir_gets_the_image(tmp_path: Path, upstream: MtlsUpstream) -> None:
    """``ca.crt`` plus ``client.cert``/``client.key``: the handshake succeeds, the manifest
    and every blob come through byte for byte, and the log stays quiet."""
    cert_dir = upstream.pki.ca.client_dir(tmp_path / "certs", "mirror")
    with serving(tmp_path / "data", _mirror(tmp_path, upstream, cert_dir)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            got = c.get("/v2/apps/app/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
            assert got.status_code == 200 and got.content == upstream.image.body
            for digest in upstream.image.blobs:
                blob = c.get(f"/v2/apps/app/blobs/{digest}")
                assert blob.status_code == 200
                assert blob.headers["Docker-Content-Digest"] == digest
        server.stop()
        assert quiet_log(server.output()) == []


def test_client_pair_is_presented_with_tls_verify_false(
    tmp_path: Path, upstream: MtlsUpstream
) -> None:
    """``tlsVerify: false`` stops checking the upstream's certificate; it does not stop
    dockyard presenting its own: the client pair in ``certDir`` still goes out."""
    cert_dir = upstream.pki.ca.client_dir(tmp_path / "certs", "mirror")
    (cert_dir / "ca.crt").unlink()
    config = _mirror(tmp_path, upstream, cert_dir, tlsVerify=False)
    with serving(tmp_path / "data", config) as server:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            got = c.get("/v2/apps/app/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
            assert got.status_code == 200 and got.content == upstream.image.body
        server.stop()
        assert quiet_log(server.output()) == []


def test_without_the_client_pair_the_fetch_fails_cleanly(
    tmp_path: Path, upstream: MtlsUpstream
) -> None:
    """Only ``ca.crt`` in ``certDir``: the upstream refuses the handshake. The client gets
    the usual 404 within seconds; the log has one warning naming the upstream, no error,
    no traceback."""
    cert_dir = upstream.pki.ca.client_dir(tmp_path / "certs")
    with serving(tmp_path / "data", _mirror(tmp_path, upstream, cert_dir)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            started = time.monotonic()
            got = c.get("/v2/apps/app/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
            assert time.monotonic() - started < 5
            assert_error(got, 404, "NAME_UNKNOWN")
        server.stop()
        warnings = quiet_log(server.output())
    assert len(warnings) == 1, warnings
    assert upstream.server.host in warnings[0]["message"]
    assert not (tmp_path / "data" / "apps/app").exists()
